"""A background thread that samples the stack once a second while a scenario runs.

Throughput alone does not tell whether the stack keeps up: ingestion can accept faster than the
relay publishes or the event handler folds. The sampler records the outbox depth, the consumer
group's lag and the CPU/RSS of each service so that a run can be judged sustained (backlogs
bounded), attributed (who burns the CPU) and checked for memory growth over a soak.

Every probe is best effort: a failed query gives None, a vanished process is skipped, and the
thread never dies of it, because a sampler crash must not abort a long benchmark run.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import psutil  # type: ignore[import-untyped, unused-ignore]
import psycopg

from bench.results import ProcSample
from services.infra.kafka_lag import GroupLag

DEFAULT_TOPICS = ("sensor-events", "user-actions", "system-events")
_QUERY_TIMEOUT_S = 2.0


@dataclass
class SystemSample:
    """What the sampler saw at one instant (``t_wall`` is ``time.time()``)."""

    t_wall: float
    outbox_depth: int | None
    consumer_lag: int | None
    procs: dict[str, ProcSample] = field(default_factory=dict)
    # Lag of every consumer group of the stack (issue 20: each must keep up), by group id.
    group_lags: dict[str, int | None] = field(default_factory=dict)


class _HasProcs(Protocol):
    @property
    def procs(self) -> dict[str, ProcSample]: ...


class _ProcTrees:
    """CPU and RSS of process trees, keeping one psutil.Process per pid across ticks.

    psutil's ``cpu_percent(None)`` measures since the previous call on the *same object*, so
    the objects are cached; a pid reused by a new process is told apart by its create time
    (psutil's equality). A child's first reading is 0 because it has no previous call yet.
    A tree stops at another named root: when the benchmark process itself is a root (it is
    the parent of the whole stack), it is not charged for the services' CPU.
    """

    def __init__(self, roots: dict[str, int] | Callable[[], dict[str, int]]) -> None:
        self._live = roots if callable(roots) else None
        self._roots = {} if callable(roots) else dict(roots)
        self._cache: dict[int, Any] = {}

    def _proc(self, pid: int) -> Any:
        cached = self._cache.get(pid)
        try:
            fresh = psutil.Process(pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            self._cache.pop(pid, None)
            return None
        if cached is not None and cached == fresh:
            return cached
        self._cache[pid] = fresh
        return fresh

    def _children_map(self) -> dict[int, list[int]]:
        """One pass over /proc per tick, instead of one per process as Process.children does."""
        children: dict[int, list[int]] = {}
        for proc in psutil.process_iter(["ppid"]):
            ppid = proc.info.get("ppid")
            if ppid is not None:
                children.setdefault(int(ppid), []).append(int(proc.pid))
        return children

    def _tree(self, root_pid: int, children: dict[int, list[int]]) -> list[int]:
        other_roots = set(self._roots.values()) - {root_pid}
        pids: list[int] = []
        stack = [root_pid]
        while stack:
            pid = stack.pop()
            pids.append(pid)
            stack.extend(c for c in children.get(pid, []) if c not in other_roots)
        return pids

    def sample(self) -> dict[str, ProcSample]:
        if self._live is not None:
            self._roots = dict(self._live())
        children = self._children_map()
        out: dict[str, ProcSample] = {}
        seen: set[int] = set()
        for name, root_pid in self._roots.items():
            cpu = 0.0
            rss = 0
            pss: int | None = 0
            for pid in self._tree(root_pid, children):
                proc = self._proc(pid)
                if proc is None:
                    continue
                seen.add(pid)
                try:
                    with proc.oneshot():
                        cpu += float(proc.cpu_percent(None))
                        rss += int(proc.memory_info().rss)
                        if pss is not None:
                            pss = _add_pss(pss, proc)
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
            out[name] = ProcSample(
                cpu_percent=round(cpu, 1),
                rss_mb=round(rss / 2**20, 1),
                pss_mb=None if pss is None else round(pss / 2**20, 1),
            )
        for pid in [p for p in self._cache if p not in seen]:
            del self._cache[pid]
        return out


def _add_pss(total: int, proc: Any) -> int | None:
    """Adds the process's PSS (from /proc/<pid>/smaps_rollup); None when it is unavailable."""
    try:
        return total + int(proc.memory_full_info().pss)
    except (AttributeError, psutil.AccessDenied):
        return None


class _OutboxProbe:
    """``count(*)`` of ingestion.outbox over one reused connection, reconnecting on failure."""

    def __init__(self, db_url: str) -> None:
        self._url = db_url
        self._conn: psycopg.Connection[Any] | None = None

    def depth(self) -> int | None:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(
                    self._url,
                    autocommit=True,
                    connect_timeout=int(_QUERY_TIMEOUT_S),
                    application_name="bench-sampler",
                )
                self._conn.execute(f"SET statement_timeout = {int(_QUERY_TIMEOUT_S * 1000)}")
            row = self._conn.execute("SELECT count(*) FROM ingestion.outbox").fetchone()
            return None if row is None else int(row[0])
        except psycopg.Error:
            self.close()
            return None

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None


class Sampler:
    """Samples process trees, outbox depth and consumer lag every ``interval`` seconds.

    ``procs`` maps a display name to a root pid (or is a function returning that map, asked
    on every tick); children (PostgreSQL backends, Envoy's
    workers) are included. ``db_url`` / ``brokers`` may be None to skip that probe. Ticks are
    scheduled on a fixed grid so a slow probe delays one sample, not every later one.
    """

    def __init__(
        self,
        procs: dict[str, int] | Callable[[], dict[str, int]],
        db_url: str | None,
        brokers: str | None,
        group: str = "event-handler",
        topics: Sequence[str] = DEFAULT_TOPICS,
        interval: float = 1.0,
        groups: Sequence[tuple[str, Sequence[str]]] = (),
    ) -> None:
        """``group`` is the one whose lag is ``consumer_lag`` (the run's sustained verdict);
        ``groups`` are every group whose lag is recorded in ``group_lags``."""
        self.interval = interval
        self._trees = _ProcTrees(procs)
        self._outbox = _OutboxProbe(db_url) if db_url else None
        self._lag = GroupLag(brokers, group, topics) if brokers else None
        self._group = group
        self._group_lags = (
            {g: GroupLag(brokers, g, t) for g, t in groups if g != group} if brokers else {}
        )
        self._samples: list[SystemSample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Prime the CPU counters now so that the first sample covers a real interval."""
        if self._thread is not None:
            raise RuntimeError("Sampler already started")
        self._trees.sample()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> list[SystemSample]:
        """Stop the thread, close its connections and return every sample taken."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._outbox is not None:
            self._outbox.close()
        if self._lag is not None:
            self._lag.close()
        for probe in self._group_lags.values():
            probe.close()
        return self.samples()

    def samples(self) -> list[SystemSample]:
        """A copy of the samples so far (safe while running)."""
        with self._lock:
            return list(self._samples)

    def latest(self) -> SystemSample | None:
        """The newest sample, for a live progress line."""
        with self._lock:
            return self._samples[-1] if self._samples else None

    def sample_once(self) -> SystemSample:
        """Take one sample in the calling thread (also what the background thread does)."""
        procs = self._trees.sample()
        depth = self._outbox.depth() if self._outbox is not None else None
        lag = self._lag.lag() if self._lag is not None else None
        lags: dict[str, int | None] = {self._group: lag} if self._group_lags else {}
        lags.update({g: probe.lag() for g, probe in self._group_lags.items()})
        return SystemSample(
            t_wall=time.time(), outbox_depth=depth, consumer_lag=lag, procs=procs, group_lags=lags
        )

    def _run(self) -> None:
        next_at = time.monotonic() + self.interval
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            try:
                sample = self.sample_once()
            except Exception as exc:  # never let one bad probe end the sampling
                sample = SystemSample(time.time(), None, None, {})
                _warn_once(f"bench sampler: {type(exc).__name__}: {exc}")
            with self._lock:
                self._samples.append(sample)
            next_at += self.interval
            now = time.monotonic()
            if next_at < now:  # fell behind (a probe hung): skip the missed slots
                next_at = now + self.interval


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        print(message, file=sys.stderr)


def peak_rss(samples: Sequence[_HasProcs]) -> dict[str, float]:
    """Highest RSS (MB) seen per process tree."""
    peak: dict[str, float] = {}
    for s in samples:
        for name, p in s.procs.items():
            peak[name] = max(peak.get(name, 0.0), p.rss_mb)
    return peak


def memory_growth(samples: Sequence[_HasProcs]) -> dict[str, float]:
    """Memory growth (MB, PSS or else RSS) per tree: median of the last third minus median of
    the first third.

    Medians of thirds, not first-vs-last, so that warm-up allocation and a single GC spike do
    not read as a leak. Works on ``SystemSample`` and on ``Tick`` alike. Fewer than three
    readings of a tree give last minus first.
    """
    series: dict[str, list[float]] = {}
    for s in samples:
        for name, p in s.procs.items():
            series.setdefault(name, []).append(p.memory_mb)
    growth: dict[str, float] = {}
    for name, values in series.items():
        n = len(values)
        if n < 3:
            growth[name] = round(values[-1] - values[0], 1)
            continue
        third = n // 3
        first = statistics.median(values[:third])
        last = statistics.median(values[n - third :])
        growth[name] = round(last - first, 1)
    return growth
