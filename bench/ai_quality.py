"""Labelled sensor streams and the quality measures of an anomaly detector (issue 18).

Each device has a realistic signal (a base level, daily seasonality, slow drift, Gaussian
noise; a reading every 5 minutes) and, after its warm-up, a few injected anomalies of one
kind: spike, dip, level shift, variance burst, stuck value, seasonality break. An anomaly is
detected when an alarm falls inside it; an alarm on a normal reading is a false alarm
(readings just after an anomaly, ``AFTER`` of them, are neither: a model may need them to
see the signal is back). Detection delay is readings from the anomaly's start to its first
alarm.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from services.inference.detector import Scored

STEP = 300.0  # seconds between readings
DAY = 288  # readings per day
KINDS = ("spike", "dip", "level_shift", "variance_burst", "stuck", "seasonality_break")
AFTER = 6


@dataclass(frozen=True, slots=True)
class Segment:
    kind: str
    start: int
    end: int  # exclusive


@dataclass(slots=True)
class Stream:
    device: str
    kind: str
    times: list[float]
    values: list[float]
    segments: list[Segment]


def make_stream(
    device: str, kind: str, rng: random.Random, *, days: int = 8, warmup: int = 2 * DAY
) -> Stream:
    n = days * DAY
    base = rng.uniform(-20, 80)
    noise = rng.uniform(0.2, 2.0)
    amp = rng.uniform(3, 12) * noise
    phase = rng.uniform(0, 2 * math.pi)
    drift = rng.uniform(-1, 1) * 3 * noise / DAY  # up to 3 noise sd a day
    t0 = 1_780_000_000.0 + rng.randrange(0, 86400, 300)
    times = [t0 + i * STEP for i in range(n)]

    def season(i: int, flip: bool = False) -> float:
        s = amp * math.sin(2 * math.pi * (times[i] % 86400) / 86400 + phase)
        return -s if flip else s

    values = [base + drift * i + season(i) + rng.gauss(0, noise) for i in range(n)]
    segments: list[Segment] = []
    at = warmup + rng.randrange(DAY // 4, DAY // 2)
    while True:
        length = {
            "spike": 1,
            "dip": 1,
            "level_shift": 36,
            "variance_burst": 24,
            "stuck": 24,
            "seasonality_break": 72,
        }[kind]
        if at + length + AFTER >= n:
            break
        seg = Segment(kind, at, at + length)
        for i in range(seg.start, seg.end):
            if kind == "spike":
                values[i] += rng.uniform(8, 15) * noise
            elif kind == "dip":
                values[i] -= rng.uniform(8, 15) * noise
            elif kind == "level_shift":
                values[i] += 8 * noise
            elif kind == "variance_burst":
                values[i] = base + drift * i + season(i) + rng.gauss(0, 6 * noise)
            elif kind == "stuck":
                values[i] = values[seg.start - 1]
            elif kind == "seasonality_break":
                # The daily cycle runs half a day off (a device clock or a schedule gone
                # wrong).
                values[i] = base + drift * i + season(i, flip=True) + rng.gauss(0, noise)
        segments.append(seg)
        at = seg.end + rng.randrange(DAY // 2, DAY)
    return Stream(device, kind, times, values, segments)


def streams(devices_per_kind: int = 20, seed: int = 18) -> list[Stream]:
    rng = random.Random(seed)
    return [
        make_stream(f"dev-{kind}-{i}", kind, rng) for kind in KINDS for i in range(devices_per_kind)
    ]


class Detector(Protocol):
    def score(self, x: float, t: float) -> Scored: ...
    def learn(self, x: float, t: float) -> None: ...


@dataclass(slots=True)
class Tally:
    detected: int = 0
    missed: int = 0
    false_alarms: int = 0
    normal: int = 0
    delays: list[int] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.detected += other.detected
        self.missed += other.missed
        self.false_alarms += other.false_alarms
        self.normal += other.normal
        self.delays.extend(other.delays)

    @property
    def precision(self) -> float:
        d = self.detected + self.false_alarms
        return self.detected / d if d else 0.0

    @property
    def recall(self) -> float:
        d = self.detected + self.missed
        return self.detected / d if d else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def false_per_10k(self) -> float:
        return self.false_alarms / self.normal * 10_000 if self.normal else 0.0

    @property
    def mean_delay(self) -> float:
        return sum(self.delays) / len(self.delays) if self.delays else math.nan


def alarms_of(
    stream: Stream, factory: Callable[[], Detector], threshold: float, warmup: int
) -> Iterator[bool]:
    model = factory()
    for i, (t, x) in enumerate(zip(stream.times, stream.values, strict=True)):
        s = model.score(x, t)
        yield i >= warmup and s.score >= threshold
        model.learn(x, t)


def evaluate(stream: Stream, alarms: list[bool], warmup: int) -> Tally:
    tally = Tally()
    label = [0] * len(alarms)  # 0 normal, 1 anomalous, 2 just after (ignored)
    for seg in stream.segments:
        for i in range(seg.start, seg.end):
            label[i] = 1
        for i in range(seg.end, min(seg.end + AFTER, len(alarms))):
            label[i] = max(label[i], 2)
        first = next((i for i in range(seg.start, seg.end) if alarms[i]), None)
        if first is None:
            tally.missed += 1
        else:
            tally.detected += 1
            tally.delays.append(first - seg.start)
    for i in range(warmup, len(alarms)):
        if label[i] == 0:
            tally.normal += 1
            tally.false_alarms += alarms[i]
    return tally


def run(
    factory: Callable[[], Detector], all_streams: list[Stream], *, threshold: float, warmup: int
) -> dict[str, Tally]:
    per_kind: dict[str, Tally] = {k: Tally() for k in KINDS}
    for s in all_streams:
        alarms = list(alarms_of(s, factory, threshold, warmup))
        per_kind[s.kind].add(evaluate(s, alarms, warmup))
    overall = Tally()
    for t in per_kind.values():
        overall.add(t)
    per_kind["overall"] = overall
    return per_kind


def table(results: dict[str, dict[str, Tally]]) -> str:
    lines = [
        "| detector | kind | precision | recall | F1 | false alarms /10k | mean delay |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, per_kind in results.items():
        for kind, t in per_kind.items():
            lines.append(
                f"| {name} | {kind} | {t.precision:.3f} | {t.recall:.3f} | {t.f1:.3f} | "
                f"{t.false_per_10k:.2f} | {t.mean_delay:.1f} |"
            )
    return "\n".join(lines)


# --- river's detectors, compared in the same run (ADR 20) ----------------------------------


class RiverHST:
    """river's half-space trees on (value, time of day as sine and cosine), min-max scaled."""

    def __init__(self) -> None:
        from river import anomaly, compose, preprocessing

        self._m = compose.Pipeline(
            preprocessing.MinMaxScaler(),
            anomaly.HalfSpaceTrees(n_trees=25, height=10, window_size=288, seed=18),
        )

    @staticmethod
    def _features(x: float, t: float) -> dict[str, float]:
        a = 2 * math.pi * (t % 86400) / 86400
        return {"x": x, "s": math.sin(a), "c": math.cos(a)}

    def score(self, x: float, t: float) -> Scored:
        s = float(self._m.score_one(self._features(x, t)))
        return Scored(s, x, x, s)

    def learn(self, x: float, t: float) -> None:
        self._m.learn_one(self._features(x, t))


class RiverHoltWintersPAD:
    """river's PredictiveAnomalyDetection around its additive Holt-Winters forecaster (a
    forecaster's standardised residual); no score until one season was seen."""

    def __init__(self) -> None:
        from river import anomaly, time_series

        self._m = anomaly.PredictiveAnomalyDetection(
            time_series.HoltWinters(alpha=0.05, beta=0.01, gamma=0.1, seasonality=DAY),
            horizon=1,
            n_std=3.5,
            warmup_period=DAY,
        )
        self._n = 0

    def score(self, x: float, t: float) -> Scored:
        if self._n <= DAY:
            return Scored(0.0, x, x, 0.0)
        s = float(self._m.score_one({}, x))
        return Scored(s, x, x, s)

    def learn(self, x: float, t: float) -> None:
        self._m.learn_one({}, x)
        self._n += 1


def calibrated(factory: Callable[[], Detector], calibration: list[Stream], *, warmup: int) -> float:
    """The threshold that gives a detector its best F1 on the calibration streams among those
    with at most 1 false alarm per 10,000 normal readings (the goal), else the one with the
    fewest false alarms: every detector is judged at its own best operating point."""
    scores = [[factory_score for factory_score in _scores(s, factory)] for s in calibration]
    candidates = sorted({round(v, 4) for ss in scores for v in ss if v > 0})
    if len(candidates) > 200:
        step = len(candidates) / 200
        candidates = [candidates[int(i * step)] for i in range(200)]
    best: tuple[bool, float, float] | None = None
    best_threshold = 1.0
    for th in candidates:
        tally = Tally()
        for s, ss in zip(calibration, scores, strict=True):
            alarms = [i >= warmup and v >= th for i, v in enumerate(ss)]
            tally.add(evaluate(s, alarms, warmup))
        key = (tally.false_per_10k <= 1.0, tally.f1, -tally.false_per_10k)
        if best is None or key > best:
            best, best_threshold = key, th
    return best_threshold


def _scores(stream: Stream, factory: Callable[[], Detector]) -> list[float]:
    model = factory()
    out = []
    for t, x in zip(stream.times, stream.values, strict=True):
        out.append(model.score(x, t).score)
        model.learn(x, t)
    return out


def main(argv: list[str] | None = None) -> int:
    """``make bench-ai``: every detector on the same labelled streams (a fresh seed, not
    the one the service's model was tuned on); prints the markdown table."""
    import argparse
    import json
    import time

    from services.inference.detector import RollingZ, SeasonalRobust

    p = argparse.ArgumentParser(prog="python -m bench.ai_quality")
    p.add_argument("--devices-per-kind", type=int, default=20)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--river", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--json", default="")
    args = p.parse_args(argv)
    warmup = 2 * DAY
    test = streams(args.devices_per_kind, seed=args.seed)
    calibration = streams(max(2, args.devices_per_kind // 4), seed=args.seed + 1)
    detectors: dict[str, tuple[Callable[[], Detector], float | None]] = {
        # The service's model at the service's default threshold (CJ_INFERENCE_THRESHOLD).
        "seasonal-robust (service)": (SeasonalRobust, 0.5),
        "rolling z-score (baseline)": (RollingZ, None),
    }
    if args.river:
        detectors["river half-space trees"] = (RiverHST, None)
        detectors["river Holt-Winters PAD"] = (RiverHoltWintersPAD, None)
    results: dict[str, dict[str, Tally]] = {}
    timings: dict[str, float] = {}
    for name, (factory, threshold) in detectors.items():
        th = threshold if threshold is not None else calibrated(factory, calibration, warmup=warmup)
        start = time.process_time()
        results[f"{name} @ {th:g}"] = run(factory, test, threshold=th, warmup=warmup)
        timings[name] = (time.process_time() - start) / sum(len(s.values) for s in test)
    n = sum(len(s.values) for s in test)
    print(f"{len(test)} devices, {n:,} readings, seed {args.seed}; warm-up {warmup} readings\n")
    print(table(results))
    print("\nCPU per reading (score + learn, one core):")
    for name, sec in timings.items():
        print(f"  {name}: {sec * 1e6:.1f} us")
    if args.json:
        out = {
            d: {
                k: {
                    "precision": t.precision,
                    "recall": t.recall,
                    "f1": t.f1,
                    "false_per_10k": t.false_per_10k,
                    "mean_delay": t.mean_delay,
                }
                for k, t in per.items()
            }
            for d, per in results.items()
        }
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
