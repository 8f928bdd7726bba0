"""Scenarios: run load processes against a target while sampling the system, then summarise."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from cornjacket.v1 import ingestion_pb2, ingestion_pb2_grpc

from bench.costs import CostMeter
from bench.loadgen import LoadSpec, pb_payload
from bench.report import progress
from bench.results import (
    ProcSample,
    ScenarioResult,
    Tick,
    backlog_windows,
    is_sustained,
    percentiles,
    split_by_windows,
)
from bench.sampler import DEFAULT_TOPICS, Sampler, SystemSample
from bench.watcher import Watcher, watch_note
from services.cli.auth import edge_channel


@dataclass
class Target:
    """Where load goes and what to watch while it runs."""

    edge: str  # Envoy host:port
    ingestion: str | None = None  # the ingestion service directly (gRPC)
    db_url: str | None = None
    brokers: str | None = None
    procs: dict[str, int] = field(default_factory=dict)
    # When set, asked for the pids on every sample: parts restarted mid-run (the supervisor
    # swapping the broker and its clients) are followed to their new processes.
    live_procs: Callable[[], dict[str, int]] | None = None
    token: str = ""  # bearer token with every scope ("" when the edge runs insecure)
    # Every consumer group of the stack (id, topics): each one's lag must drain to 0.
    groups: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    # Wall-time windows (start, end) of the broker swaps so far (the soak's supervisor).
    swaps: Callable[[], list[tuple[float, float]]] | None = None
    watcher: Watcher | None = None  # the run's watcher on the live tail


@dataclass
class Merged:
    duration: float
    sched: list[float]
    lat_ms: list[float]
    events: list[int]
    errors: dict[str, int]
    err_sched: list[float]
    probes: list[tuple[str, float]]

    @property
    def events_ok(self) -> int:
        return sum(self.events)


def run_load(spec: LoadSpec, procs: int, workdir: Path, *, label: str) -> Merged:
    """Spread ``spec`` over ``procs`` loadgen processes that start together; merge results."""
    workdir.mkdir(parents=True, exist_ok=True)
    start_at = time.time() + 1.5
    children: list[tuple[subprocess.Popen[bytes], Path]] = []
    for w in range(procs):
        part = LoadSpec(
            **{**asdict(spec), "rate": spec.rate / procs, "worker": w, "start_at": start_at}
        )
        out = workdir / f"{label}-{w}.json"
        cmd = [
            sys.executable,
            "-m",
            "bench.loadgen",
            "--spec",
            json.dumps(asdict(part)),
            "--out",
            str(out),
        ]
        children.append((subprocess.Popen(cmd), out))
    deadline = start_at + spec.duration
    while any(p.poll() is None for p, _ in children):
        left = deadline - time.time()
        progress(f"{label}: {max(0.0, left):5.1f}s left" if left > 0 else f"{label}: finishing")
        time.sleep(0.5)
        if time.time() > deadline + 120:
            for p, _ in children:
                p.kill()
            raise RuntimeError(f"{label}: load generators did not finish")
    merged = Merged(spec.duration, [], [], [], {}, [], [])
    for p, out in children:
        if p.returncode != 0:
            raise RuntimeError(f"{label}: a load generator exited with {p.returncode}")
        r: dict[str, Any] = json.loads(out.read_text())
        merged.sched += r["sched"]
        merged.lat_ms += r["lat_ms"]
        merged.events += r["events"]
        merged.err_sched += r["err_sched"]
        merged.probes += [tuple(x) for x in r["probes"]]
        for k, v in r["errors"].items():
            merged.errors[k] = merged.errors.get(k, 0) + v
    return merged


def e2e_latencies(
    db_url: str, probes: Sequence[tuple[str, float]], timeout: float = 30
) -> tuple[list[tuple[float, float]], int]:
    """Send->projection latency of probe events (each has its own aggregate) as (send wall
    time, latency ms); and how many never showed up within ``timeout``. ``updated_at`` is
    the handler's clock at its write."""
    pending = dict(probes)
    found: list[tuple[float, float]] = []
    deadline = time.time() + timeout
    with psycopg.connect(db_url, autocommit=True) as conn:
        while pending and time.time() < deadline:
            rows = conn.execute(
                "SELECT aggregate_id, updated_at FROM eventhandler.projections "
                "WHERE projection_type = 'sensor_state' AND aggregate_id = ANY(%s)",
                (list(pending),),
            ).fetchall()
            found += arrived(pending, rows)
            if pending:
                time.sleep(0.5)
    return found, len(pending)


def seed_projections(target: Target, aggregates: int, timeout: float = 60) -> None:
    """Give every aggregate the query scenario reads (``bench-{n}``) a projection first, so
    it measures lookups that find a row even when no ingest scenario ran before it."""
    names = [f"bench-{n}" for n in range(aggregates)]
    with edge_channel(target.edge, target.token) as channel:
        stub = ingestion_pb2_grpc.IngestionServiceStub(channel)
        for i in range(0, len(names), 500):
            stub.IngestEvents(
                ingestion_pb2.IngestEventsRequest(
                    events=[
                        ingestion_pb2.IngestEventRequest(
                            event_type="sensor.reading", aggregate_id=a, payload=pb_payload(1, "")
                        )
                        for a in names[i : i + 500]
                    ]
                ),
                timeout=30,
            )
    if not target.db_url:
        return
    deadline = time.time() + timeout
    with psycopg.connect(target.db_url, autocommit=True) as conn:
        while time.time() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM eventhandler.projections "
                "WHERE projection_type = 'sensor_state' AND aggregate_id = ANY(%s)",
                (names,),
            ).fetchone()
            if row and row[0] == len(names):
                return
            time.sleep(0.2)
    raise RuntimeError(f"seeding: {aggregates} projections not there after {timeout:.0f} s")


def arrived(
    pending: dict[str, float], rows: Sequence[tuple[str, datetime]]
) -> list[tuple[float, float]]:
    """The probes whose projection rows show them: (send wall time, latency ms), removed from
    ``pending``. A row written before the probe was sent is an earlier event's projection of
    the same aggregate (another scenario's probe of the same name): the probe stays pending,
    it is not a negative latency."""
    out: list[tuple[float, float]] = []
    for agg, updated in rows:
        sent = pending.get(agg)
        if sent is not None and updated.timestamp() >= sent:
            del pending[agg]
            out.append((sent, (updated.timestamp() - sent) * 1000))
    return out


def drained(sample: SystemSample) -> bool:
    """Outbox empty and every consumer group measured at lag 0 (an unknown lag, None, is
    not held against it: the probe failed, which the sample's other readings show)."""
    lags = [sample.consumer_lag, *sample.group_lags.values()]
    return (sample.outbox_depth or 0) == 0 and all((lag or 0) == 0 for lag in lags)


def wait_drained(target: Target, sampler: Sampler, timeout: float = 60) -> float:
    """Seconds until outbox and every group's consumer lag are back to zero (or the
    timeout)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        last = sampler.latest()
        if last is not None and last.t_wall > t0 and drained(last):
            return time.time() - t0
        time.sleep(0.5)
    return timeout


def build_ticks(m: Merged, samples: Sequence[SystemSample], start_wall: float) -> list[Tick]:
    seconds = int(m.duration) + 1
    lat: list[list[float]] = [[] for _ in range(seconds)]
    acc = [0] * seconds
    errs = [0] * seconds
    for s, latency, n in zip(m.sched, m.lat_ms, m.events, strict=True):
        i = min(int(s), seconds - 1)
        lat[i].append(latency)
        acc[i] += n
    for s in m.err_sched:
        errs[min(int(s), seconds - 1)] += 1
    by_second: dict[int, SystemSample] = {}
    for sample in samples:
        by_second.setdefault(int(sample.t_wall - start_wall), sample)
    ticks = []
    for i in range(seconds):
        p = percentiles(lat[i])
        sys_sample = by_second.get(i)
        ticks.append(
            Tick(
                t=float(i),
                accepted=acc[i],
                errors=errs[i],
                accept_p50_ms=p["p50"],
                accept_p99_ms=p["p99"],
                outbox_depth=sys_sample.outbox_depth if sys_sample else None,
                consumer_lag=sys_sample.consumer_lag if sys_sample else None,
                procs=sys_sample.procs if sys_sample else dict[str, ProcSample](),
            )
        )
    return ticks


# Scenarios that ingest events (the live-tail watcher should see them); reads do not.
INGEST_MODES = ("http", "grpc-unary", "grpc-batch", "mqtt")

# Seconds of the stack without load before each scenario: each stage's floor (bench/costs.py).
IDLE_S = 3.0


def run_scenario(
    name: str,
    spec: LoadSpec,
    target: Target,
    workdir: Path,
    *,
    procs: int = 1,
    ceiling: tuple[str, float] | None = None,
    measure_e2e: bool = True,
    group: str = "event-handler",
    topics: Sequence[str] = DEFAULT_TOPICS,
) -> ScenarioResult:
    """``group`` (reading ``topics``) is the consumer group whose lag decides, with the outbox
    depth, whether the run was sustained (bench/ai_speed.py watches ai-inference)."""
    if spec.mode == "query-http":
        seed_projections(target, spec.aggregates)
    sampler = Sampler(
        target.live_procs or target.procs,
        target.db_url,
        target.brokers,
        group,
        topics,
        groups=target.groups,
    )
    background0 = pg_background(target.db_url) if target.db_url else None
    meter = CostMeter(target.live_procs or target.procs, target.db_url, target.brokers)
    meter.start(idle_s=IDLE_S if target.db_url else 0.0)
    sampler.start()
    watched = target.watcher.snapshot() if target.watcher else None
    start_wall = time.time() + 1.5
    # Probe aggregates are named after the run id: one per scenario, so no probe shares an
    # aggregate (and a projection row) with an earlier scenario's.
    spec = replace(spec, run_id=f"{name}-{int(time.time())}")
    try:
        merged = run_load(spec, procs, workdir, label=name)
        drain_s = wait_drained(target, sampler) if target.db_url else 0.0
    except BaseException:
        meter.close()  # its follower thread must not outlive the scenario
        raise
    finally:
        samples = sampler.stop()
    costs = meter.stop(merged.events_ok)
    notes = []
    trips: list[tuple[float, float]] = []
    if measure_e2e and target.db_url and merged.probes:
        trips, missing = e2e_latencies(target.db_url, merged.probes)
        if missing:
            notes.append(f"{missing} probe events not in a projection within 30 s")
    e2e = [ms for _, ms in trips]
    swaps = [w for w in (target.swaps() if target.swaps else []) if w[1] >= start_wall]
    swaps = backlog_windows(swaps, [(x.t_wall, x.outbox_depth, x.consumer_lag) for x in samples])
    outside, inside = split_by_windows(trips, swaps)
    if target.watcher is not None and watched is not None and spec.mode in INGEST_MODES:
        notes.append(watch_note(watched, target.watcher.snapshot(), merged.events_ok))
    ticks = build_ticks(merged, samples, start_wall)
    accepted_per_s = merged.events_ok / spec.duration
    if target.db_url:
        notes.append(f"outbox and consumer lag drained {drain_s:.1f}s after the load stopped")
        background1 = pg_background(target.db_url)
        if background0 is not None and background1 is not None:
            notes.append(background_note(background0, background1))
    ratio = accepted_per_s / ceiling[1] if ceiling and ceiling[1] else None
    return ScenarioResult(
        name=name,
        kind=spec.mode,
        target_rate=spec.rate or None,
        duration_s=spec.duration,
        events=merged.events_ok,
        accepted_per_s=accepted_per_s,
        errors=merged.errors,
        accept_latency_ms=percentiles(merged.lat_ms),
        e2e_latency_ms=percentiles(e2e),
        ticks=ticks,
        ceiling=ceiling[0] if ceiling else None,
        ratio=ratio,
        sustained=is_sustained(ticks, rate=accepted_per_s) if target.db_url else None,
        notes=notes,
        costs=costs,
        drain_s=round(drain_s, 1) if target.db_url else None,
        group_lag_after=dict(samples[-1].group_lags) if samples else {},
        swaps=[(round(a - start_wall, 1), round(b - start_wall, 1)) for a, b in swaps],
        e2e_outside_swaps_ms=percentiles(outside) if swaps else {},
        e2e_in_swaps_ms=percentiles(inside) if swaps else {},
        pg_shared_buffers_mb=shared_buffers_mb(target.db_url) if target.db_url else None,
    )


@dataclass(frozen=True)
class PgBackground:
    """PostgreSQL's own work beside the load: the autovacuum workers running (and on what),
    and the checkpointer's cumulative buffers written (pg_stat_checkpointer)."""

    autovacuum: tuple[str, ...]
    checkpoint_buffers: int | None


def pg_background(db_url: str) -> PgBackground | None:
    """Why a scenario can be slower after a heavy one (issue 20, target 3): a checkpoint
    writing what the batches dirtied, or autovacuum on the tables they grew."""
    try:
        with psycopg.connect(db_url, autocommit=True, connect_timeout=5) as conn:
            vacuums = conn.execute(
                "SELECT coalesce(p.relid::regclass::text, a.query) FROM pg_stat_activity a "
                "LEFT JOIN pg_stat_progress_vacuum p ON p.pid = a.pid "
                "WHERE a.backend_type = 'autovacuum worker'"
            ).fetchall()
            try:
                row = conn.execute("SELECT buffers_written FROM pg_stat_checkpointer").fetchone()
            except psycopg.Error:  # before PostgreSQL 17
                row = None
    except psycopg.Error:
        return None
    return PgBackground(
        tuple(str(v[0])[:80] for v in vacuums), None if row is None else int(row[0])
    )


def background_note(before: PgBackground, after: PgBackground) -> str:
    written = (
        after.checkpoint_buffers - before.checkpoint_buffers
        if after.checkpoint_buffers is not None and before.checkpoint_buffers is not None
        else None
    )
    vac = ", ".join(before.autovacuum) or "none"
    ckpt = "-" if written is None else f"{written * 8 / 1024:,.0f} MB"
    return (
        f"PostgreSQL background: autovacuum at the start {vac}; "
        f"checkpoint writes during the run {ckpt}"
    )


def shared_buffers_mb(db_url: str) -> float | None:
    """PostgreSQL's shared_buffers as the server reports it (``SHOW shared_buffers``), MB:
    the buffer pool that touching pages grows PostgreSQL's PSS up to, once."""
    try:
        with psycopg.connect(db_url, autocommit=True, connect_timeout=5) as conn:
            row = conn.execute("SELECT pg_size_bytes(current_setting('shared_buffers'))").fetchone()
    except psycopg.Error:
        return None
    return None if row is None else round(int(row[0]) / 2**20, 1)
