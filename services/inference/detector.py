"""Online anomaly models per (device, metric): pure arithmetic, no I/O.

``SeasonalRobust`` (the service's model, ADR 20) predicts a reading as level + daily profile
and scores its standardised residual, with a robust scale (an exponentially weighted mean
absolute residual) and a run-length test for a stuck sensor. ``RollingZ`` is the simple
baseline the benchmark compares it with. Both learn one reading at a time, in event-time
order, and their whole state is a small JSON-ready dict (``state()`` / ``restore``), so a
checkpoint restored gives exactly the scores the original would have given.

Scores are in [0, 1]: ``z**2 / (z**2 + Z_T**2)`` of the z-like surprise, so 0.5 means
``Z_T`` robust standard deviations and the expected range is prediction +- ``Z_T`` scales.
"""

from __future__ import annotations

import copy
import math
from collections import deque
from dataclasses import dataclass
from typing import Any

Z_T = 5.0  # the z at which the score is 0.5 (the default threshold)
SECONDS_PER_DAY = 86_400.0
MAD_TO_SIGMA = math.sqrt(math.pi / 2)  # E|N(0, s)| = s * sqrt(2/pi)
SHIFT_WINDOW = 6  # readings whose mean standardised residual tests for a sustained shift
SHIFT_CLIP = 4.0  # a spike moves the shift test by at most this much
ACCEPT_AFTER = 288  # alarms in a row after which the model learns the new normal
SUSPECT_Z = 4.0  # a reading this surprising is learned with SUSPECT_WEIGHT only
SUSPECT_WEIGHT = 0.3
SETTLED = 1 / 3  # the profile's and the scale's learning rates after the warm-up, a fraction


def _clip(v: float, limit: float) -> float:
    return max(-limit, min(limit, v))


@dataclass(frozen=True, slots=True)
class Scored:
    score: float  # in [0, 1]
    low: float  # the expected range
    high: float
    z: float


def score_of(z: float) -> float:
    z2 = z * z
    return z2 / (z2 + Z_T * Z_T) if math.isfinite(z2) else 1.0


class SeasonalRobust:
    """level (slow EW mean of the deseasonalised value: follows drift) + a daily profile in
    ``buckets`` time-of-day buckets, read with linear interpolation; residual scale is an EW
    mean of |residual|, learned with the residual clipped at 4 scales so that an anomaly
    teaches it little. A stuck sensor is a run of identical readings where the model has
    learned that repeats are rare."""

    name = "seasonal-robust"
    version = 2

    def __init__(
        self,
        *,
        warmup: int = 576,
        threshold: float = 0.5,
        buckets: int = 48,
        level_alpha: float = 0.01,
        trend_alpha: float = 0.01,
        season_alpha: float = 0.3,
        scale_alpha: float = 0.03,
        repeat_alpha: float = 0.01,
    ) -> None:
        self.warmup = warmup
        self.threshold = threshold
        self.buckets = buckets
        self.level_alpha = level_alpha
        self.trend_alpha = trend_alpha
        self.season_alpha = season_alpha
        self.scale_alpha = scale_alpha
        self.repeat_alpha = repeat_alpha
        self.n = 0
        self.level = 0.0
        self.trend = 0.0
        self.recent: list[float] = []
        self.alarms = 0  # readings in a row learned while alarming
        self.season = [0.0] * buckets
        self.season_n = [0] * buckets
        self.scale = 0.0  # EW mean |residual|
        self.repeat_rate = 0.0  # EW rate of a reading equal to the previous one
        self.last = math.nan
        self.run = 0  # identical readings so far (1 = the last one differs from its previous)

    # -- the daily profile -------------------------------------------------------------
    def _where(self, t: float) -> tuple[int, int, float]:
        pos = (t % SECONDS_PER_DAY) / SECONDS_PER_DAY * self.buckets - 0.5
        lo = math.floor(pos)
        frac = pos - lo
        return lo % self.buckets, (lo + 1) % self.buckets, frac

    def _season_at(self, t: float) -> float:
        a, b, frac = self._where(t)
        return self.season[a] * (1 - frac) + self.season[b] * frac

    def predict(self, t: float) -> float:
        return self.level + self.trend + self._season_at(t)

    def _sigma(self) -> float:
        # Floors: a constant signal has scale 0; any change must not be infinitely surprising.
        floor = 1e-6 * max(1.0, abs(self.level))
        return max(self.scale * MAD_TO_SIGMA, floor)

    def score(self, x: float, t: float) -> Scored:
        if self.n == 0:
            return Scored(0.0, x, x, 0.0)
        pred = self.predict(t)
        sigma = self._sigma()
        z = abs(x - pred) / sigma
        # A sustained one-sided residual (level shift, broken cycle): the EW mean of the
        # clipped standardised residual, in its own standard deviations.
        recent = [*self.recent[-(SHIFT_WINDOW - 1) :], _clip((x - pred) / sigma, SHIFT_CLIP)]
        if len(recent) == SHIFT_WINDOW:
            z = max(z, abs(sum(recent)) / math.sqrt(SHIFT_WINDOW))
        if x == self.last and self.n > 20:
            # run+1 identical readings in a row, each about as likely as repeat_rate.
            p = max(self.repeat_rate, 1e-3)
            surprise = self.run * -math.log(p)
            z = max(z, math.sqrt(2 * surprise) if self.run >= 3 else 0.0)
        return Scored(score_of(z), pred - Z_T * sigma, pred + Z_T * sigma, z)

    def learn(self, x: float, t: float) -> None:
        a, b, frac = self._where(t)
        if self.n == 0:
            self.level = x
        else:
            pred = self.predict(t)
            resid = x - pred
            sigma = self._sigma()
            mature = self.n > 20
            warm = self.n >= self.warmup
            gated = warm and self.alarms < ACCEPT_AFTER
            z = self.score(x, t).z if gated else 0.0
            if gated and score_of(z) >= self.threshold:
                # While it alarms the model learns nothing but the recent residuals: an
                # anomaly is not the new normal unless it lasts ACCEPT_AFTER readings.
                self.alarms += 1
                self.recent = [
                    *self.recent[-(SHIFT_WINDOW - 1) :],
                    _clip(resid / sigma, SHIFT_CLIP),
                ]
                self.run = self.run + 1 if x == self.last else 1
                self.last = x
                self.n += 1
                return
            # Suspicious (above SUSPECT_Z, under the threshold): the start of an anomaly is
            # learned with a small weight, so it does not pull the level or the profile.
            suspect = gated and z >= SUSPECT_Z
            weight = SUSPECT_WEIGHT if suspect else 1.0
            if suspect:
                self.alarms += 1
            else:
                self.alarms = 0
            # Additive Holt-Winters on a clipped reading: an anomaly teaches the model little.
            if mature:
                x = pred + max(-4 * sigma, min(4 * sigma, resid))
            season = self._season_at(t)
            la = max(self.level_alpha, 1.0 / (self.n + 1)) * weight  # a plain mean while young
            old = self.level
            self.level = la * (x - season) + (1 - la) * (self.level + self.trend)
            ta = self.trend_alpha * weight
            self.trend = ta * (self.level - old) + (1 - ta) * self.trend
            for i, w in ((a, 1 - frac), (b, frac)):
                if w <= 0:
                    continue
                self.season_n[i] += 1
                season_alpha = self.season_alpha * SETTLED if warm else self.season_alpha
                sa = max(season_alpha, 1.0 / self.season_n[i]) * w * weight
                self.season[i] += sa * (x - self.level - self.season[i])
            scale_alpha = self.scale_alpha * SETTLED if warm else self.scale_alpha
            ca = max(scale_alpha, 1.0 / self.n)
            self.scale += (
                ca * (min(abs(resid), 4 * sigma) if mature else abs(resid)) - ca * self.scale
            )
            self.recent = [*self.recent[-(SHIFT_WINDOW - 1) :], _clip(resid / sigma, SHIFT_CLIP)]
            repeat = 1.0 if x == self.last else 0.0
            self.repeat_rate += self.repeat_alpha * (repeat - self.repeat_rate)
        self.run = self.run + 1 if x == self.last else 1
        self.last = x
        self.n += 1

    def state(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "version": self.version,
            "params": [
                self.warmup,
                self.threshold,
                self.buckets,
                self.level_alpha,
                self.trend_alpha,
                self.season_alpha,
                self.scale_alpha,
                self.repeat_alpha,
            ],
            "n": self.n,
            "level": self.level,
            "trend": self.trend,
            "recent": self.recent,
            "alarms": self.alarms,
            "season": self.season,
            "season_n": self.season_n,
            "scale": self.scale,
            "repeat_rate": self.repeat_rate,
            "last": None if math.isnan(self.last) else self.last,
            "run": self.run,
        }

    def copy(self) -> SeasonalRobust:
        """An independent copy (what ``restore(self.state())`` gives, without the round
        trip: the service works on a copy of each model per reading)."""
        m = copy.copy(self)
        m.recent = list(self.recent)
        m.season = list(self.season)
        m.season_n = list(self.season_n)
        return m

    def finite(self) -> bool:
        """Every number of the state is finite, as JSON can store it (``last`` is NaN, stored
        as null, until the first reading)."""
        return (
            math.isfinite(self.level)
            and math.isfinite(self.trend)
            and math.isfinite(self.scale)
            and math.isfinite(self.repeat_rate)
            and not math.isinf(self.last)
            and all(map(math.isfinite, self.recent))
            and all(map(math.isfinite, self.season))
        )

    @classmethod
    def restore(cls, s: dict[str, Any]) -> SeasonalRobust:
        warmup, threshold, buckets, la, ta, sa, ca, ra = s["params"]
        if int(s.get("version", 1)) < 2:
            # v1 learned its profile and scale at one rate; v2 settles to a third after the
            # warm-up, so a v1 checkpoint keeps its rates.
            sa, ca = sa / SETTLED, ca / SETTLED
        m = cls(
            warmup=int(warmup),
            threshold=float(threshold),
            buckets=int(buckets),
            level_alpha=la,
            trend_alpha=ta,
            season_alpha=sa,
            scale_alpha=ca,
            repeat_alpha=ra,
        )
        m.n = int(s["n"])
        m.level = float(s["level"])
        m.trend = float(s["trend"])
        m.recent = [float(v) for v in s["recent"]]
        m.alarms = int(s["alarms"])
        m.season = [float(v) for v in s["season"]]
        m.season_n = [int(v) for v in s["season_n"]]
        m.scale = float(s["scale"])
        m.repeat_rate = float(s["repeat_rate"])
        m.last = math.nan if s["last"] is None else float(s["last"])
        m.run = int(s["run"])
        return m


class RollingZ:
    """The baseline: z-score against the mean and standard deviation of the last ``window``
    readings."""

    name = "rolling-z"
    version = 1

    def __init__(self, window: int = 288) -> None:
        self.window = window
        self.values: deque[float] = deque(maxlen=window)
        self.n = 0

    def score(self, x: float, t: float) -> Scored:
        if len(self.values) < 2:
            return Scored(0.0, x, x, 0.0)
        mean = sum(self.values) / len(self.values)
        var = sum((v - mean) ** 2 for v in self.values) / (len(self.values) - 1)
        sd = max(math.sqrt(var), 1e-9 * max(1.0, abs(mean)))
        z = abs(x - mean) / sd
        return Scored(score_of(z), mean - Z_T * sd, mean + Z_T * sd, z)

    def learn(self, x: float, t: float) -> None:
        self.values.append(x)
        self.n += 1

    def state(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "version": self.version,
            "window": self.window,
            "values": list(self.values),
            "n": self.n,
        }

    def copy(self) -> RollingZ:
        m = RollingZ(self.window)
        m.values.extend(self.values)
        m.n = self.n
        return m

    def finite(self) -> bool:
        return all(map(math.isfinite, self.values))

    @classmethod
    def restore(cls, s: dict[str, Any]) -> RollingZ:
        m = cls(int(s["window"]))
        m.values.extend(float(v) for v in s["values"])
        m.n = int(s["n"])
        return m


Model = SeasonalRobust | RollingZ


def new_model(name: str = SeasonalRobust.name) -> Model:
    if name == RollingZ.name:
        return RollingZ()
    return SeasonalRobust()


def restore(state: dict[str, Any]) -> Model:
    if state.get("model") == RollingZ.name:
        return RollingZ.restore(state)
    if state.get("model") == SeasonalRobust.name:
        return SeasonalRobust.restore(state)
    raise ValueError(f"unknown model state {state.get('model')!r}")
