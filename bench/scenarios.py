"""Scenarios: run load processes against a target while sampling the system, then summarise."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from cornjacket.v1 import ingestion_pb2, ingestion_pb2_grpc

from bench.costs import CostMeter
from bench.loadgen import LoadSpec, pb_payload
from bench.report import progress
from bench.results import ProcSample, ScenarioResult, Tick, is_sustained, percentiles
from bench.sampler import DEFAULT_TOPICS, Sampler, SystemSample
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
) -> tuple[list[float], int]:
    """Send->projection latency of probe events (each has its own aggregate); and how many
    never showed up within ``timeout``. ``updated_at`` is the handler's clock at its write."""
    pending = dict(probes)
    found: list[float] = []
    deadline = time.time() + timeout
    with psycopg.connect(db_url, autocommit=True) as conn:
        while pending and time.time() < deadline:
            rows = conn.execute(
                "SELECT aggregate_id, updated_at FROM eventhandler.projections "
                "WHERE projection_type = 'sensor_state' AND aggregate_id = ANY(%s)",
                (list(pending),),
            ).fetchall()
            for agg, updated in rows:
                sent = pending.pop(agg, None)
                if sent is not None:
                    found.append((updated.timestamp() - sent) * 1000)
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


def wait_drained(target: Target, sampler: Sampler, timeout: float = 60) -> float:
    """Seconds until outbox and consumer lag are back to zero (or the timeout)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        last = sampler.latest()
        if last is not None and (last.outbox_depth or 0) == 0 and (last.consumer_lag or 0) == 0:
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
        target.live_procs or target.procs, target.db_url, target.brokers, group, topics
    )
    meter = CostMeter(target.live_procs or target.procs, target.db_url, target.brokers)
    meter.start(idle_s=IDLE_S if target.db_url else 0.0)
    sampler.start()
    start_wall = time.time() + 1.5
    try:
        merged = run_load(spec, procs, workdir, label=name)
        drain_s = wait_drained(target, sampler) if target.db_url else 0.0
    finally:
        samples = sampler.stop()
    costs = meter.stop(merged.events_ok)
    notes = []
    e2e: list[float] = []
    if measure_e2e and target.db_url and merged.probes:
        e2e, missing = e2e_latencies(target.db_url, merged.probes)
        if missing:
            notes.append(f"{missing} probe events not in a projection within 30 s")
    ticks = build_ticks(merged, samples, start_wall)
    accepted_per_s = merged.events_ok / spec.duration
    if target.db_url:
        notes.append(f"outbox and consumer lag drained {drain_s:.1f}s after the load stopped")
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
    )
