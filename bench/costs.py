"""What a scenario cost per accepted event: CPU per stage, PostgreSQL WAL and transactions,
bytes on the bus. The capacity model in docs/performance.md is built from these figures.

CPU is read from the kernel's cumulative counters (user + system time of every process in a
stage's tree) at the start and at the end of the scenario, load and drain together, so it
is exact where the per-second sampler is an estimate. A process that started meanwhile (a
new PostgreSQL backend, a service restarted with a swapped broker) counts from zero; one
that exited meanwhile counts up to its last reading: the meter reads every process once a
second while it runs (FOLLOW_S), so a process replaced mid-run (the soak's broker swap
restarts the broker and its consumers) loses at most that second, never its whole run.
It undercounts a little and never overcounts. The load
generators are a stage of their own ("load"): the benchmark process and its children, minus
the stack, so the model can say what the box could do without them.

Every probe is best effort, like the sampler's: a failure gives None and a warning, never
an aborted run.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil  # type: ignore[import-untyped, unused-ignore]
import psycopg
from confluent_kafka import OFFSET_END, Consumer, KafkaError, TopicPartition

from services.infra.kafka import PLAINTEXT, client_config

LOAD = "load"  # the stage name of the load generators
_TOPICS = ("sensor-events", "user-actions", "system-events")
_BUS_SAMPLE = 2_000  # messages read to measure the bytes of one
_TIMEOUT_S = 5.0
FOLLOW_S = 1.0  # how often a running meter reads every process's CPU time


@dataclass
class Costs:
    """Per accepted event. ``cpu_us`` per stage, over the stage's idle floor when one was
    measured (``idle_cores``); ``None`` where a probe failed."""

    events: int
    seconds: float
    cpu_us: dict[str, float] = field(default_factory=dict)
    wal_bytes: float | None = None
    pg_transactions: float | None = None
    bus_bytes: float | None = None  # key + value + headers of one message, as the relay sends
    # What each stage burned without load (cores), subtracted from cpu_us; {} = not measured.
    idle_cores: dict[str, float] = field(default_factory=dict)

    def stack_cpu_us(self) -> float:
        """CPU of the platform per event (every stage but the load generators)."""
        return sum(v for k, v in self.cpu_us.items() if k != LOAD)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Costs:
        def opt(key: str) -> float | None:
            v = d.get(key)
            return None if v is None else float(v)

        return cls(
            events=int(d["events"]),
            seconds=float(d["seconds"]),
            cpu_us={str(k): float(v) for k, v in d.get("cpu_us", {}).items()},
            wal_bytes=opt("wal_bytes"),
            pg_transactions=opt("pg_transactions"),
            bus_bytes=opt("bus_bytes"),
            idle_cores={str(k): float(v) for k, v in d.get("idle_cores", {}).items()},
        )


def _tree_cpu(roots: Mapping[str, int]) -> dict[str, dict[tuple[int, float], float]]:
    """CPU seconds so far of every process of every named tree, by (pid, create time) so a
    reused pid is not mistaken for the process it replaced. A tree stops at another root."""
    children: dict[int, list[int]] = {}
    for proc in psutil.process_iter(["ppid"]):
        ppid = proc.info.get("ppid")
        if ppid is not None:
            children.setdefault(int(ppid), []).append(int(proc.pid))
    root_pids = set(roots.values())
    out: dict[str, dict[tuple[int, float], float]] = {}
    for name, root in roots.items():
        seen: dict[tuple[int, float], float] = {}
        stack = [root]
        while stack:
            pid = stack.pop()
            stack.extend(c for c in children.get(pid, []) if c not in root_pids)
            with contextlib.suppress(psutil.Error):
                p = psutil.Process(pid)
                with p.oneshot():
                    t = p.cpu_times()
                    seen[(pid, p.create_time())] = t.user + t.system
        out[name] = seen
    return out


def cpu_delta(
    before: Mapping[str, Mapping[tuple[int, float], float]],
    after: Mapping[str, Mapping[tuple[int, float], float]],
) -> dict[str, float]:
    """CPU seconds each tree spent between two readings (processes alive at the second). A
    process is one key whichever tree it was read in first: it counts from its own first
    reading, in the tree of the second."""
    was = {key: t for procs in before.values() for key, t in procs.items()}
    spent: dict[str, float] = {}
    for name, procs in after.items():
        spent[name] = sum(max(0.0, t - was.get(key, 0.0)) for key, t in procs.items())
    return spent


def merge_latest(
    into: dict[str, dict[tuple[int, float], float]],
    reading: Mapping[str, Mapping[tuple[int, float], float]],
) -> None:
    """Keep each process's latest CPU time: a process gone by the next reading keeps the
    time it had reached (see the module's note on restarts). A process belongs to the tree
    it was last read in, never to two: a restarted service's process is read in the
    benchmark's own tree until the stack's root map names it (the soak's broker swap)."""
    owner = {key: name for name, procs in into.items() for key in procs}
    for name, procs in reading.items():
        known = into.setdefault(name, {})
        for key, t in procs.items():
            prev = owner.get(key)
            reached = into[prev].pop(key) if prev is not None and prev != name else 0.0
            known[key] = max(t, reached, known.get(key, 0.0))
            owner[key] = name


class _Postgres:
    """WAL position and the database's transaction count, over a short-lived connection."""

    def __init__(self, url: str) -> None:
        self._url = url

    def read(self) -> tuple[int, int] | None:
        try:
            with psycopg.connect(
                self._url, autocommit=True, connect_timeout=int(_TIMEOUT_S)
            ) as conn:
                conn.execute("SELECT pg_stat_force_next_flush()")
                row = conn.execute(
                    "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint,"
                    " (SELECT xact_commit + xact_rollback FROM pg_stat_database"
                    "  WHERE datname = current_database())"
                ).fetchone()
        except psycopg.Error as e:
            _warn(f"bench costs: PostgreSQL probe failed: {e}")
            return None
        return None if row is None else (int(row[0]), int(row[1]))


def message_bytes(brokers: str, since_ms: int, topics: Sequence[str] = _TOPICS) -> float | None:
    """Mean size (key + value + headers) of the messages the bus got since ``since_ms``: a
    sample of up to _BUS_SAMPLE, found by timestamp (ListOffsets by time)."""
    consumer = Consumer(
        {
            **client_config(brokers, PLAINTEXT),
            "group.id": "bench-costs",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        meta = consumer.list_topics(timeout=_TIMEOUT_S)
        wanted = [
            TopicPartition(t, p, since_ms)
            for t in topics
            if t in meta.topics
            for p in meta.topics[t].partitions
        ]
        if not wanted:
            return None
        found = consumer.offsets_for_times(wanted, timeout=_TIMEOUT_S)
        start = [tp for tp in found if tp.offset not in (OFFSET_END, -1)]
        if not start:
            return None
        consumer.assign(start)
        sizes: list[int] = []
        open_parts = len(start)
        deadline = time.monotonic() + _TIMEOUT_S
        while open_parts and len(sizes) < _BUS_SAMPLE and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    open_parts -= 1
                continue
            if (msg.timestamp()[1] or 0) < since_ms:
                continue
            size = len(msg.key() or b"") + len(msg.value() or b"")
            headers: Any = msg.headers() or []  # list of (name, value) as the relay sends
            size += sum(len(h[0]) + len(h[1] or b"") for h in headers)
            sizes.append(size)
        return sum(sizes) / len(sizes) if sizes else None
    except Exception as e:  # a probe must not end a run
        _warn(f"bench costs: bus probe failed: {type(e).__name__}: {e}")
        return None
    finally:
        consumer.close()


class CostMeter:
    """Start before the load, stop after the drain; ``stop(events)`` gives the costs."""

    def __init__(
        self,
        procs: Mapping[str, int] | Callable[[], Mapping[str, int]],
        db_url: str | None,
        brokers: str | None,
    ) -> None:
        self._procs = procs
        self._pg = _Postgres(db_url) if db_url else None
        self._brokers = brokers
        self._cpu: dict[str, dict[tuple[int, float], float]] = {}
        self._pg_at: tuple[int, int] | None = None
        self._idle: _Rates | None = None
        self._t0 = 0.0
        # Every process's latest CPU time since start(), read each FOLLOW_S by a thread.
        self._latest: dict[str, dict[tuple[int, float], float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._follower: threading.Thread | None = None

    def _roots(self) -> dict[str, int]:
        roots = dict(self._procs() if callable(self._procs) else self._procs)
        roots[LOAD] = os.getpid()  # the benchmark and its load generator processes
        return roots

    def start(self, idle_s: float = 0.0) -> None:
        """Take the starting readings. With ``idle_s``, first watch the stack that long
        without load: what each stage burns idle (consumers polling, the broker's timers,
        health checks) is its floor, subtracted from the scenario's figures, so a cost per
        event is what an event adds, not the floor spread over however few events ran."""
        self._idle = None
        if idle_s > 0:
            cpu0, pg0, t0 = _tree_cpu(self._roots()), self._read_pg(), time.time()
            time.sleep(idle_s)  # a measurement window, not a wait for something to happen
            cpu1, pg1, t1 = _tree_cpu(self._roots()), self._read_pg(), time.time()
            self._idle = _Rates.between(cpu0, cpu1, pg0, pg1, t1 - t0)
        self._t0 = time.time()
        self._cpu = _tree_cpu(self._roots())
        self._latest = {}
        merge_latest(self._latest, self._cpu)
        self._pg_at = self._read_pg()
        self._stop.clear()
        self._follower = threading.Thread(target=self._follow, name="cost-meter", daemon=True)
        self._follower.start()

    def _follow(self) -> None:
        while not self._stop.wait(FOLLOW_S):
            try:
                reading = _tree_cpu(self._roots())
            except Exception as e:  # a probe never aborts a run
                _warn(f"cost meter: could not read CPU times: {e}")
                continue
            with self._lock:
                merge_latest(self._latest, reading)

    def _read_pg(self) -> tuple[int, int] | None:
        return self._pg.read() if self._pg else None

    def close(self) -> None:
        """End the follower thread (stop() does; a scenario that raised calls this)."""
        self._stop.set()
        if self._follower is not None:
            self._follower.join()
            self._follower = None

    def stop(self, events: int) -> Costs:
        seconds = time.time() - self._t0
        self.close()
        with self._lock:
            merge_latest(self._latest, _tree_cpu(self._roots()))
            spent = cpu_delta(self._cpu, self._latest)
        pg_now = self._read_pg()
        idle = self._idle
        n = max(events, 1)
        floor = (lambda k: idle.cpu.get(k, 0.0) * seconds) if idle else (lambda k: 0.0)
        costs = Costs(
            events=events,
            seconds=round(seconds, 1),
            cpu_us={
                k: round(max(0.0, v - floor(k)) / n * 1e6, 1) for k, v in sorted(spent.items())
            },
            idle_cores={k: round(v, 3) for k, v in sorted(idle.cpu.items())} if idle else {},
        )
        if self._pg_at and pg_now:
            wal = pg_now[0] - self._pg_at[0] - (idle.wal * seconds if idle else 0.0)
            xacts = pg_now[1] - self._pg_at[1] - (idle.xacts * seconds if idle else 0.0)
            costs.wal_bytes = round(max(0.0, wal) / n, 1)
            costs.pg_transactions = round(max(0.0, xacts) / n, 4)
        if self._brokers:
            size = message_bytes(self._brokers, int(self._t0 * 1000))
            costs.bus_bytes = None if size is None else round(size, 1)
        return costs


@dataclass
class _Rates:
    """What the stack does per second without load: CPU (cores) per stage, WAL bytes and
    transactions."""

    cpu: dict[str, float]
    wal: float
    xacts: float

    @classmethod
    def between(
        cls,
        cpu0: Mapping[str, Mapping[tuple[int, float], float]],
        cpu1: Mapping[str, Mapping[tuple[int, float], float]],
        pg0: tuple[int, int] | None,
        pg1: tuple[int, int] | None,
        seconds: float,
    ) -> _Rates:
        cpu = {k: v / seconds for k, v in cpu_delta(cpu0, cpu1).items()}
        if pg0 and pg1:
            return cls(cpu, (pg1[0] - pg0[0]) / seconds, (pg1[1] - pg0[1]) / seconds)
        return cls(cpu, 0.0, 0.0)


def _warn(message: str) -> None:
    print(message, file=sys.stderr)
