"""Benchmark results as plain dataclasses with a JSON round-trip.

Results are saved as JSON so that a run can be reported again, charted, or compared with a run
from another commit or machine without re-running it. ``from_dict`` accepts what ``to_dict``
wrote; it does not try to read other shapes.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.costs import Costs

#: Below this many queued rows/messages the outbox or the consumer is treated as keeping up,
#: whatever the growth: a few hundred in flight is normal batching, not a backlog.
SUSTAINED_FLOOR = 2000
#: ...and above this many seconds of input (at the run's accepted rate) it is behind, however
#: flat: a backlog that takes seconds to drain is not keeping up, even if it grows slowly.
MAX_BACKLOG_SECONDS = 1.0


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    """Nearest-rank p50/p95/p99 plus max and count; empty input gives zeros and count 0.

    Nearest rank (the smallest sample with at least p% of samples at or below it) always
    returns a value that was actually observed, which is what a latency target is about.
    """
    if not samples_ms:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0, "count": 0.0}
    ordered = sorted(samples_ms)
    n = len(ordered)

    def rank(p: int) -> float:
        # ceil(p * n / 100) in integers: float rounding would shift the rank by one at times.
        return float(ordered[max(1, -(-p * n // 100)) - 1])

    return {
        "p50": rank(50),
        "p95": rank(95),
        "p99": rank(99),
        "max": float(ordered[-1]),
        "count": float(n),
    }


@dataclass
class ProcSample:
    """One process tree at one instant. CPU is in percent of one core (200 = two cores busy)."""

    cpu_percent: float
    rss_mb: float
    # Proportional set size: shared pages divided among the processes sharing them, so a tree
    # of PostgreSQL backends counts its shared buffers once (RSS counts them per backend).
    pss_mb: float | None = None

    @property
    def memory_mb(self) -> float:
        """What memory growth is judged on: PSS where the kernel reports it, else RSS."""
        return self.rss_mb if self.pss_mb is None else self.pss_mb

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProcSample:
        pss = d.get("pss_mb")
        return cls(
            cpu_percent=float(d["cpu_percent"]),
            rss_mb=float(d["rss_mb"]),
            pss_mb=None if pss is None else float(pss),
        )


def _procs_from(d: Mapping[str, Any]) -> dict[str, ProcSample]:
    return {str(name): ProcSample.from_dict(p) for name, p in d.items()}


@dataclass
class Tick:
    """One second of a scenario: what the load generator saw plus what the sampler saw."""

    t: float  # seconds since the scenario started
    accepted: int  # events accepted in this second
    errors: int
    accept_p50_ms: float
    accept_p99_ms: float
    outbox_depth: int | None
    consumer_lag: int | None
    procs: dict[str, ProcSample] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Tick:
        return cls(
            t=float(d["t"]),
            accepted=int(d["accepted"]),
            errors=int(d["errors"]),
            accept_p50_ms=float(d["accept_p50_ms"]),
            accept_p99_ms=float(d["accept_p99_ms"]),
            outbox_depth=_opt_int(d.get("outbox_depth")),
            consumer_lag=_opt_int(d.get("consumer_lag")),
            procs=_procs_from(d.get("procs", {})),
        )


@dataclass
class Ceiling:
    """A measured upper bound that a scenario is compared with (e.g. Envoy in front of a no-op)."""

    name: str
    value: float
    unit: str
    detail: str
    # False: not measured in this run (--skip-ceilings); ``value`` is a stated default.
    measured: bool = True
    # CPU per call of each process while the ceiling was measured (us; bench/costs.py), the
    # floor each stage of the platform is compared with.
    cpu_us: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Ceiling:
        return cls(
            name=str(d["name"]),
            value=float(d["value"]),
            unit=str(d["unit"]),
            detail=str(d.get("detail", "")),
            measured=bool(d.get("measured", True)),
            cpu_us={str(k): float(v) for k, v in d.get("cpu_us", {}).items()},
        )


@dataclass
class ScenarioResult:
    """One scenario's outcome. Query scenarios put their request latency in accept_latency_ms."""

    name: str
    kind: str
    target_rate: float | None  # None = closed loop
    duration_s: float
    events: int
    accepted_per_s: float
    errors: dict[str, int]
    accept_latency_ms: dict[str, float]
    e2e_latency_ms: dict[str, float]
    ticks: list[Tick]
    ceiling: str | None  # name of the Ceiling this scenario is compared with
    ratio: float | None  # accepted_per_s / ceiling value
    sustained: bool | None  # outbox depth and consumer lag bounded to the end
    notes: list[str] = field(default_factory=list)
    costs: Costs | None = None  # per accepted event, load and drain (bench/costs.py)
    # Seconds from the end of the load until outbox and lag were 0 (None: not measured;
    # the drain timeout when they never were).
    drain_s: float | None = None
    # Each consumer group's lag when the drain ended (issue 20: every group keeps up).
    group_lag_after: dict[str, int | None] = field(default_factory=dict)
    # Windows (seconds from the load's start) when the embedded broker was being swapped,
    # and send->projection split by them: a probe whose trip overlapped a swap is "in".
    swaps: list[tuple[float, float]] = field(default_factory=list)
    e2e_outside_swaps_ms: dict[str, float] = field(default_factory=dict)
    e2e_in_swaps_ms: dict[str, float] = field(default_factory=dict)
    # PostgreSQL's shared_buffers (MB) as it reported it: its memory allowance in the soak.
    pg_shared_buffers_mb: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ScenarioResult:
        return cls(
            name=str(d["name"]),
            kind=str(d["kind"]),
            target_rate=_opt_float(d.get("target_rate")),
            duration_s=float(d["duration_s"]),
            events=int(d["events"]),
            accepted_per_s=float(d["accepted_per_s"]),
            errors={str(k): int(v) for k, v in d.get("errors", {}).items()},
            accept_latency_ms={str(k): float(v) for k, v in d["accept_latency_ms"].items()},
            e2e_latency_ms={str(k): float(v) for k, v in d["e2e_latency_ms"].items()},
            ticks=[Tick.from_dict(t) for t in d.get("ticks", [])],
            ceiling=None if d.get("ceiling") is None else str(d["ceiling"]),
            ratio=_opt_float(d.get("ratio")),
            sustained=None if d.get("sustained") is None else bool(d["sustained"]),
            notes=[str(n) for n in d.get("notes", [])],
            costs=Costs.from_dict(d["costs"]) if d.get("costs") else None,
            drain_s=_opt_float(d.get("drain_s")),
            group_lag_after={str(k): _opt_int(v) for k, v in d.get("group_lag_after", {}).items()},
            swaps=[(float(a), float(b)) for a, b in d.get("swaps", [])],
            e2e_outside_swaps_ms=_floats(d.get("e2e_outside_swaps_ms", {})),
            e2e_in_swaps_ms=_floats(d.get("e2e_in_swaps_ms", {})),
            pg_shared_buffers_mb=_opt_float(d.get("pg_shared_buffers_mb")),
        )


@dataclass
class BenchResult:
    """A whole run: where and how it ran, the ceilings, and every scenario."""

    started_at: str
    machine: dict[str, str]
    config: dict[str, object]
    ceilings: list[Ceiling]
    scenarios: list[ScenarioResult]

    def ceiling(self, name: str) -> Ceiling | None:
        return next((c for c in self.ceilings if c.name == name), None)

    def scenario(self, name: str) -> ScenarioResult | None:
        return next((s for s in self.scenarios if s.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BenchResult:
        return cls(
            started_at=str(d["started_at"]),
            machine={str(k): str(v) for k, v in d.get("machine", {}).items()},
            config=dict(d.get("config", {})),
            ceilings=[Ceiling.from_dict(c) for c in d.get("ceilings", [])],
            scenarios=[ScenarioResult.from_dict(s) for s in d.get("scenarios", [])],
        )

    def save(self, path: Path | str) -> None:
        """Write atomically, so an interrupted run never leaves a truncated result behind."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path | str) -> BenchResult:
        return cls.from_dict(json.loads(Path(path).read_text()))


def is_sustained(
    ticks: list[Tick], floor: int = SUSTAINED_FLOOR, rate: float | None = None
) -> bool:
    """True when the outbox and the consumer kept up until the end of the run.

    Applied separately to outbox depth and to consumer lag, over the ticks where the value is
    known (None = not measured, ignored), split into thirds by order. With m2 and m3 the
    medians of the middle and last thirds, a metric passes when max(last third) <= floor, or
    when both hold:

    - no late blow-up: max(last third) <= 2 * m2;
    - no steady climb: m3 - m2 <= max(0.25 * m2, floor / 2).

    The first alone would pass a backlog that grows linearly from zero (its last value is
    exactly twice the middle median), which is the usual way of falling behind, hence the
    second. Given the accepted ``rate`` (events/s), a third: max(last third) <= max(floor,
    MAX_BACKLOG_SECONDS * rate), since a backlog still climbing slowly passes the second
    (a closed-loop run at 16,700/s ended with 59,500 outbox rows, 6 s of end-to-end
    latency). A metric with no known value does not count against the run; with fewer than
    three known values only the floor applies.
    """
    limit = max(floor, MAX_BACKLOG_SECONDS * rate) if rate else None
    for values in (
        [t.outbox_depth for t in ticks if t.outbox_depth is not None],
        [t.consumer_lag for t in ticks if t.consumer_lag is not None],
    ):
        if not values or max(values[-max(1, len(values) // 3) :]) <= floor:
            continue
        n = len(values)
        if n < 3:
            return False
        third = n // 3
        m2 = statistics.median(values[third : n - third])
        last = values[n - third :]
        m3 = statistics.median(last)
        if max(last) > 2 * m2 or m3 - m2 > max(0.25 * m2, floor / 2):
            return False
        if limit is not None and max(last) > limit:
            return False
    return True


def backlog_windows(
    windows: Sequence[tuple[float, float]],
    samples: Sequence[tuple[float, int | None, int | None]],
) -> list[tuple[float, float]]:
    """The broker swaps' windows (wall-time start, end), each extended to the end of the
    backlog it left: until the first sample after the swap whose outbox depth and consumer
    lag are back to where they were before it (the last sample before its start, or 500
    where that was lower: a batch in flight). ``samples`` are (wall time, outbox depth,
    consumer lag), oldest first; unknown values (None) do not end a backlog. An event sent
    into the backlog waits for the swap as much as one sent during it: its latency is the
    swap's cost, reported with the swaps, not with the steady state. A backlog that never
    drains extends its window to the last sample."""
    out: list[tuple[float, float]] = []
    for start, end in windows:
        before = [s for s in samples if s[0] < start]
        depth0 = max(500, before[-1][1] or 0) if before else 500
        lag0 = max(500, before[-1][2] or 0) if before else 500
        after = [s for s in samples if s[0] > end]
        settled = next(
            (
                t
                for t, depth, lag in after
                if depth is not None and lag is not None and depth <= depth0 and lag <= lag0
            ),
            after[-1][0] if after else end,
        )
        out.append((start, max(end, settled)))
    return out


def split_by_windows(
    samples: Sequence[tuple[float, float]], windows: Sequence[tuple[float, float]]
) -> tuple[list[float], list[float]]:
    """Send->projection samples (send wall time, latency ms) split into (outside, inside)
    the windows (wall-time start, end): a sample is inside when its trip, from the send to
    the projection, overlaps a window (an event sent before a swap and projected after it
    waited for the swap too)."""
    outside: list[float] = []
    inside: list[float] = []
    for sent, ms in samples:
        arrived = sent + ms / 1000
        hit = any(sent <= end and arrived >= start for start, end in windows)
        (inside if hit else outside).append(ms)
    return outside, inside


def _floats(d: Mapping[str, Any]) -> dict[str, float]:
    return {str(k): float(v) for k, v in d.items()}


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)
