"""`make bench-ai-speed`: the inference service's speed beside the running stack (issue 18).

Measures the run's own ceilings first (U = no-op gRPC unary calls/s, C = Envoy -> no-op
HTTP req/s; bench/__main__.noop_ceilings), starts the whole stack (`make run`'s parts,
inference on, on free ports) and runs two scenarios:

* ai-throughput: sensor readings over the gRPC batch path (Envoy, batches of 500) at 1.0 x U
  readings/s, spread over --devices devices (1,000), for --duration seconds. It keeps up when
  the harness's sustained rule (bench/results.is_sustained) holds for the outbox and the
  ``ai-inference`` group's lag, the load reached 95 % of its rate, and the lag drained after
  it. CPU per reading is the inference process's CPU (kernel counters, over its idle floor;
  bench/costs.py) divided by the readings accepted.
* ai-latency: --latency-devices devices (200) first learn two days of 5-minute readings
  (a daily cycle and noise, sent with their past event times), so their models are warm;
  then readings go one per request through Envoy's HTTP route at 0.12 x C readings/s, open
  loop, for --latency-duration seconds, and --spikes-per-s of them (at fixed times, on
  devices taken in turn) are spikes of 15 noise standard deviations. Latency is the spike's
  ingestion ack (the 202 arriving at the sender) -> its ``ai.anomaly`` stored in the event
  store (``ingestion.event_store.created_at``, the relay's transaction), paired by the
  anomaly's ``source_event_id``; p50/p99, spikes without an anomaly, anomalies of normal
  readings.

The machine is shared: the load average (1, 5, 15 min) is recorded before and after each
scenario. The result goes to bench/ai-speed-latest.json and bench/history/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from cornjacket.v1 import ingestion_pb2, ingestion_pb2_grpc
from google.protobuf import struct_pb2, timestamp_pb2

from bench.ai_quality import AFTER
from bench.loadgen import HttpConnection, LoadSpec
from bench.report import RATE_REACHED, progress
from bench.results import ScenarioResult, percentiles
from bench.scenarios import Target, run_scenario
from services.cli.auth import edge_channel
from services.cli.stack import Stack, settings_on_free_ports

GROUP = "ai-inference"
TOPICS = ("sensor-events",)
STEP = 300.0  # seconds between warm-up readings
SPIKE_SD = 15.0  # a spike's height in noise standard deviations
HISTORY = Path("bench/history")
LATEST = Path("bench/ai-speed-latest.json")


# --- the signal ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signal:
    """A device's normal readings: a base level, a daily cycle and Gaussian noise (the
    quality benchmark's shape without drift, bench/ai_quality.py)."""

    base: float
    noise: float
    amp: float
    phase: float

    @classmethod
    def draw(cls, rng: random.Random) -> Signal:
        noise = rng.uniform(0.2, 2.0)
        return cls(rng.uniform(-20, 80), noise, rng.uniform(3, 12) * noise, rng.uniform(0, 6.28))

    def normal(self, t: float, rng: random.Random) -> float:
        season = self.amp * math.sin(2 * math.pi * (t % 86400) / 86400 + self.phase)
        return self.base + season + rng.gauss(0, self.noise)

    def spike(self, t: float, rng: random.Random) -> float:
        return self.normal(t, rng) + SPIKE_SD * self.noise


def device_names(n: int, prefix: str = "ai-lat") -> list[str]:
    return [f"{prefix}-{i:04d}" for i in range(n)]


# --- pairing a spike with its anomaly ---------------------------------------------------


@dataclass
class Pairing:
    """Spikes matched with their stored ``ai.anomaly`` events."""

    latencies_ms: list[float] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # spikes without an anomaly
    unexpected: int = 0  # anomalies of normal readings (other than just after a spike)
    after_spike: int = 0  # anomalies of the AFTER readings of a device after its spike
    duplicates: int = 0  # a second anomaly for one source event (must be 0)


def pair(
    spikes: Mapping[str, float],
    stored: Iterable[tuple[str, float]],
    readings: Mapping[str, tuple[str, int]] | None = None,
) -> Pairing:
    """``spikes``: source event id -> ack time (epoch s); ``stored``: (source_event_id,
    stored time) of every ``ai.anomaly`` in the event store since the run started. A
    spike's latency runs to its FIRST stored anomaly; further ones count as duplicates.
    With ``readings`` (event id -> (device, the device's reading number)), an anomaly of one
    of the AFTER readings that follow its device's spike counts as ``after_spike`` (the
    quality benchmark counts those neither as detections nor as false alarms)."""
    readings = readings or {}
    spiked: dict[str, set[int]] = {}
    for e in spikes:
        if e in readings:
            device, k = readings[e]
            spiked.setdefault(device, set()).add(k)
    first: dict[str, float] = {}
    out = Pairing()
    for source, at in stored:
        if source not in spikes:
            device, k = readings.get(source, ("", -1))
            if any(k - j in spiked.get(device, ()) for j in range(1, AFTER + 1)):
                out.after_spike += 1
            else:
                out.unexpected += 1
        elif source in first:
            out.duplicates += 1
            first[source] = min(first[source], at)
        else:
            first[source] = at
    for source, acked in spikes.items():
        if source in first:
            out.latencies_ms.append((first[source] - acked) * 1000)
        else:
            out.missing.append(source)
    return out


# --- verdicts ----------------------------------------------------------------------------


def keeps_up(s: ScenarioResult, drain_limit_s: float) -> tuple[bool, str]:
    """Did the inference consumer keep up with the throughput scenario? Its load must have
    reached RATE_REACHED of the target (else the stack in front of inference did not take
    the rate and the run shows nothing about it), the sustained rule must hold for outbox
    and lag, and the lag must have drained within ``drain_limit_s`` after the load."""
    if s.target_rate and s.accepted_per_s < RATE_REACHED * s.target_rate:
        return False, (
            f"accepted {s.accepted_per_s:,.0f}/s, under {RATE_REACHED:.0%} of the "
            f"{s.target_rate:,.0f}/s target"
        )
    if s.sustained is None or s.drain_s is None:
        return False, "lag not measured"
    if not s.sustained:
        return False, "outbox or ai-inference lag kept growing (sustained rule)"
    if s.drain_s > drain_limit_s:
        return False, f"lag drained {s.drain_s:.1f} s after the load (limit {drain_limit_s:g} s)"
    return True, f"sustained; lag drained {s.drain_s:.1f} s after the load"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- the throughput scenario -------------------------------------------------------------


def throughput(target: Target, args: argparse.Namespace, u: float, work: Path) -> dict[str, Any]:
    before = load_average()
    spec = LoadSpec(
        "grpc-batch",
        target.edge,
        u,
        16,
        args.duration,
        batch=500,
        aggregates=args.devices,
        token=target.token,
    )
    s = run_scenario(
        "ai-throughput",
        spec,
        target,
        work / "load",
        ceiling=("grpc_noop_direct", u),
        measure_e2e=False,
        group=GROUP,
        topics=TOPICS,
    )
    ok, why = keeps_up(s, args.drain_limit)
    lags = [t.consumer_lag for t in s.ticks if t.consumer_lag is not None]
    cpu = s.costs.cpu_us.get("inference") if s.costs else None
    return {
        "keeps_up": ok,
        "verdict": why,
        "readings_per_s": round(s.accepted_per_s, 1),
        "target_per_s": round(u, 1),
        "devices": args.devices,
        "max_lag": max(lags) if lags else None,
        "inference_cpu_us_per_reading": cpu,
        "load_average_before": before,
        "load_average_after": load_average(),
        "scenario": s.to_dict(),
    }


# --- the latency scenario ----------------------------------------------------------------


def _pb_value(v: float) -> struct_pb2.Value:
    return struct_pb2.Value(
        struct_value=struct_pb2.Struct(
            fields={
                "value": struct_pb2.Value(number_value=v),
                "unit": struct_pb2.Value(string_value="C"),
            }
        )
    )


def warm_up(
    target: Target, signals: Mapping[str, Signal], readings: int, rng: random.Random
) -> None:
    """Send ``readings`` past readings per device, STEP apart and ending now, time-major (so
    each device's arrive in event-time order), over the gRPC batch route."""
    end = time.time() - 1.0
    batch: list[ingestion_pb2.IngestEventRequest] = []
    sent = 0
    with edge_channel(target.edge, target.token) as channel:
        stub = ingestion_pb2_grpc.IngestionServiceStub(channel)

        def flush() -> None:
            nonlocal sent
            resp = stub.IngestEvents(ingestion_pb2.IngestEventsRequest(events=batch), timeout=60)
            if resp.rejected:
                first = next(r.error for r in resp.results if r.status == "rejected")
                raise RuntimeError(f"warm-up: {resp.rejected} readings rejected: {first}")
            sent += len(batch)
            batch.clear()

        for i in range(readings):
            t = end - (readings - 1 - i) * STEP
            ts = timestamp_pb2.Timestamp()
            ts.FromDatetime(datetime.fromtimestamp(t, UTC))
            for device, sig in signals.items():
                batch.append(
                    ingestion_pb2.IngestEventRequest(
                        event_type="sensor.reading",
                        aggregate_id=device,
                        payload=_pb_value(sig.normal(t, rng)),
                        event_time=ts,
                    )
                )
                if len(batch) >= 500:
                    flush()
            if i % 50 == 0:
                progress(f"ai-latency warm-up: {sent:,} readings sent")
        if batch:
            flush()


def learned(db_url: str, devices: Sequence[str], observations: int) -> int:
    """How many of the devices' models have learned at least ``observations`` readings."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM inference.models "
            "WHERE device = ANY(%s) AND metric = 'value' AND observations >= %s",
            (list(devices), observations),
        ).fetchone()
    return int(row[0]) if row else 0


@dataclass
class Sent:
    spikes: dict[str, float] = field(default_factory=dict)  # event id -> ack (epoch s)
    # event id -> (device, the device's reading number in the schedule)
    readings_of: dict[str, tuple[str, int]] = field(default_factory=dict)
    accept_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    readings: int = 0


async def paced(
    edge: str,
    token: str,
    signals: Mapping[str, Signal],
    rate: float,
    duration: float,
    spikes_per_s: float,
    rng: random.Random,
    concurrency: int = 64,
) -> Sent:
    """Open loop: reading n is due at n / rate; every (rate / spikes_per_s)-th is a spike on
    the next device in turn, the others normal readings of the devices in turn. Accept
    latency counts from the due time (no coordinated omission)."""
    host, _, port = edge.rpartition(":")
    pool: asyncio.Queue[HttpConnection] = asyncio.Queue()
    for _ in range(concurrency):
        pool.put_nowait(HttpConnection(host, int(port), token))
    devices = list(signals)
    every = max(1, round(rate / spikes_per_s))
    out = Sent()
    inflight: set[asyncio.Task[None]] = set()

    async def one(n: int, due: float) -> None:
        spike, device, k = plan[n]
        sig = signals[device]
        value = sig.spike(time.time(), rng) if spike else sig.normal(time.time(), rng)
        body = json.dumps(
            {
                "event_type": "sensor.reading",
                "aggregate_id": device,
                "payload": {"value": value, "unit": "C"},
            }
        ).encode()
        conn = await pool.get()
        try:
            status, data = await conn.request("POST", "/api/v1/events", body)
        except (OSError, asyncio.IncompleteReadError) as e:
            out.errors[type(e).__name__] = out.errors.get(type(e).__name__, 0) + 1
            return
        finally:
            pool.put_nowait(conn)
        acked = time.time()
        if status != 202:
            out.errors[f"http {status}"] = out.errors.get(f"http {status}", 0) + 1
            return
        out.readings += 1
        out.accept_ms.append((time.perf_counter() - due) * 1000)
        event_id = str(json.loads(data)["event_id"])
        out.readings_of[event_id] = (device, k)
        if spike:
            out.spikes[event_id] = acked

    plan: list[tuple[bool, str, int]] = []
    counts: dict[str, int] = {}
    for n in range(int(rate * duration)):
        spike = n % every == every // 2
        device = devices[(n // every) % len(devices)] if spike else devices[n % len(devices)]
        counts[device] = counts.get(device, 0) + 1
        plan.append((spike, device, counts[device]))
    t0 = time.perf_counter()
    for n in range(len(plan)):
        due = t0 + n / rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        task = asyncio.create_task(one(n, due))
        inflight.add(task)
        task.add_done_callback(inflight.discard)
    if inflight:
        await asyncio.wait(inflight, timeout=60)
    return out


def stored_anomalies(db_url: str, since: float) -> list[tuple[str, float]]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT payload->>'source_event_id', created_at FROM ingestion.event_store "
            # Readings of the paced phase only (an anomaly's event_time is its reading's):
            # an alarm late in the warm-up history may be stored meanwhile.
            "WHERE event_type = 'ai.anomaly' AND created_at >= %s AND event_time >= %s",
            (datetime.fromtimestamp(since, UTC), datetime.fromtimestamp(since, UTC)),
        ).fetchall()
    return [(str(s), t.timestamp()) for s, t in rows]


HOPS = (
    "accepted -> reading stored (relay)",
    "reading stored -> anomaly checkpointed (bus, inference)",
    "anomaly checkpointed -> anomaly accepted (inference -> ingestion)",
    "anomaly accepted -> anomaly stored (relay)",
)


def hop_times(db_url: str, spikes: Mapping[str, float]) -> dict[str, list[float]]:
    """Where each spike's time went (ms), from the timestamps the stack keeps: the reading's
    event store row (``created_at``, the relay's transaction), its ``inference.anomalies``
    row (``created_at``, the inference checkpoint's transaction), the anomaly event's
    ``ingested_at`` (ingestion's acceptance) and its event store row."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT s.event_id::text, s.created_at, a.created_at, an.ingested_at, an.created_at "
            "FROM ingestion.event_store an "
            "JOIN ingestion.event_store s ON s.event_id = (an.payload->>'source_event_id')::uuid "
            "JOIN inference.anomalies a ON a.source_event_id = s.event_id "
            "WHERE an.event_type = 'ai.anomaly' AND s.event_id = ANY(%s::uuid[])",
            (list(spikes),),
        ).fetchall()
    return hops_of(spikes, [(e, *(t.timestamp() for t in ts)) for e, *ts in rows])


def hops_of(
    spikes: Mapping[str, float], rows: Iterable[tuple[str, float, float, float, float]]
) -> dict[str, list[float]]:
    """Per hop (HOPS), the milliseconds of every spike found in ``rows``: (source event id,
    reading stored, anomaly checkpointed, anomaly accepted, anomaly stored)."""
    out: dict[str, list[float]] = {h: [] for h in HOPS}
    seen: set[str] = set()
    for event_id, *times in rows:
        if event_id not in spikes or event_id in seen:
            continue
        seen.add(event_id)
        marks = [spikes[event_id], *times]
        for hop, a, b in zip(HOPS, marks, marks[1:], strict=False):
            out[hop].append((b - a) * 1000)
    return out


def latency(
    target: Target, args: argparse.Namespace, c: float, settle: Callable[[float], bool]
) -> dict[str, Any]:
    assert target.db_url is not None
    rng = random.Random(20)
    devices = device_names(args.latency_devices)
    signals = {d: Signal.draw(rng) for d in devices}
    readings = args.warmup_readings
    progress(f"ai-latency: warming up {len(devices)} devices with {readings} readings each")
    t_warm = time.time()
    warm_up(target, signals, readings, rng)
    deadline = time.time() + args.warmup_timeout
    while (done := learned(target.db_url, devices, readings)) < len(devices):
        if time.time() > deadline:
            raise RuntimeError(
                f"ai-latency warm-up: {done} of {len(devices)} models learned {readings} "
                f"readings in {args.warmup_timeout:g} s"
            )
        progress(f"ai-latency warm-up: {done} of {len(devices)} models warm")
        time.sleep(1.0)  # polling the models table until the warm-up is learned
    warm_s = time.time() - t_warm
    # The other consumers (projections, time series, rules) read the warm-up too: the paced
    # phase starts when every group has caught up, so it does not compete with that backlog.
    progress("ai-latency: waiting until every consumer group has read the warm-up")
    if not settle(args.warmup_timeout):
        raise RuntimeError("ai-latency: the consumer groups did not catch up with the warm-up")
    rate = 0.12 * c
    before = load_average()
    start = time.time()
    progress(f"ai-latency: {rate:,.0f} readings/s for {args.latency_duration:g} s")
    sent = asyncio.run(
        paced(
            target.edge,
            target.token,
            signals,
            rate,
            args.latency_duration,
            args.spikes_per_s,
            rng,
        )
    )
    after = load_average()
    deadline = time.time() + 60
    while True:
        found = pair(sent.spikes, stored_anomalies(target.db_url, start), sent.readings_of)
        if not found.missing or time.time() > deadline:
            break
        time.sleep(0.5)  # polling the event store until every spike's anomaly is there
    p = percentiles(found.latencies_ms)
    acc = percentiles(sent.accept_ms)
    hops = {
        hop: {k: round(v, 1) for k, v in percentiles(ms).items()}
        for hop, ms in hop_times(target.db_url, sent.spikes).items()
    }
    return {
        "rate_per_s": round(rate, 1),
        "readings": sent.readings,
        "achieved_per_s": round(sent.readings / args.latency_duration, 1),
        "errors": sent.errors,
        "devices": len(devices),
        "warmup_readings_per_device": readings,
        "warmup_seconds": round(warm_s, 1),
        "spikes": len(sent.spikes),
        "anomalies_paired": len(found.latencies_ms),
        "spikes_without_anomaly": len(found.missing),
        "spikes_without_anomaly_ids": found.missing[:20],
        "anomalies_of_normal_readings": found.unexpected,
        "anomalies_just_after_a_spike": found.after_spike,
        "duplicate_anomalies": found.duplicates,
        "latency_ms": {k: round(v, 1) for k, v in p.items()},
        "accept_ms": {k: round(v, 1) for k, v in acc.items()},
        "hops_ms": hops,
        "goal_p99_ms": 250,
        "meets_goal": bool(found.latencies_ms) and not found.missing and p["p99"] <= 250,
        "load_average_before": before,
        "load_average_after": after,
    }


# --- the run -----------------------------------------------------------------------------


def save(result: Mapping[str, Any], stamp: str) -> Path:
    HISTORY.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2, default=str) + "\n"
    path = HISTORY / f"ai-speed-{stamp}.json"
    path.write_text(text)
    LATEST.write_text(text)
    return path


def summary(result: Mapping[str, Any]) -> str:
    lines = [
        f"ceilings: U = {result['ceilings']['U']:,.0f} unary calls/s, "
        f"C = {result['ceilings']['C']:,.0f} req/s; load average at start "
        f"{result['load_average_start']}"
    ]
    t = result.get("throughput")
    if t:
        lines.append(
            f"ai-throughput: {t['readings_per_s']:,.0f} readings/s (target 1.0 x U = "
            f"{t['target_per_s']:,.0f}) over {t['devices']} devices: "
            f"{'KEEPS UP' if t['keeps_up'] else 'DOES NOT KEEP UP'} ({t['verdict']}); "
            f"max ai-inference lag {t['max_lag']}; inference CPU "
            f"{t['inference_cpu_us_per_reading']} us/reading; load average "
            f"{t['load_average_before']} -> {t['load_average_after']}"
        )
    lat = result.get("latency")
    if lat:
        q = lat["latency_ms"]
        lines.append(
            f"ai-latency: {lat['achieved_per_s']:,.0f} readings/s (0.12 x C = "
            f"{lat['rate_per_s']:,.0f}), {lat['spikes']} spikes: accepted -> ai.anomaly stored "
            f"p50 {q['p50']:.0f} ms, p99 {q['p99']:.0f} ms, max {q['max']:.0f} ms "
            f"(goal p99 <= 250 ms: {'met' if lat['meets_goal'] else 'NOT met'}); "
            f"{lat['spikes_without_anomaly']} spikes without an anomaly, "
            f"{lat['anomalies_of_normal_readings']} anomalies of normal readings (and "
            f"{lat.get('anomalies_just_after_a_spike', 0)} of the {AFTER} readings after a "
            "device's spike); load average "
            f"{lat['load_average_before']} -> {lat['load_average_after']}"
        )
        for hop, q in lat.get("hops_ms", {}).items():
            lines.append(f"  {hop}: p50 {q['p50']:.0f} ms, p99 {q['p99']:.0f} ms")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ai_speed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--only", nargs="*", choices=("ai-throughput", "ai-latency"))
    parser.add_argument("--duration", type=float, default=30, help="throughput seconds (30)")
    parser.add_argument("--devices", type=int, default=1000, help="throughput devices (1000)")
    parser.add_argument(
        "--drain-limit",
        type=float,
        default=10,
        help="seconds the lag may take to drain after the throughput load (10)",
    )
    parser.add_argument("--latency-duration", type=float, default=60, help="seconds (60)")
    parser.add_argument("--latency-devices", type=int, default=200)
    parser.add_argument("--spikes-per-s", type=float, default=2.0)
    parser.add_argument(
        "--warmup-readings",
        type=int,
        default=600,
        help="past readings per latency device (600, over CJ_INFERENCE_WARMUP's 576)",
    )
    parser.add_argument("--warmup-timeout", type=float, default=900)
    parser.add_argument("--ceiling-duration", type=float, default=10)
    parser.add_argument("--procs", type=int, default=2, help="ceiling load processes (2)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--no-save", action="store_true", help="do not write bench/history/")
    args = parser.parse_args(argv)
    from bench.__main__ import fresh_bus, noop_ceilings, own_target

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work = Path(tempfile.mkdtemp(prefix="cj-bench-ai-speed-"))
    progress(f"bench: scratch dir {work}")
    result: dict[str, Any] = {
        "started_at": stamp,
        "machine": {
            "cpus": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "git": subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
            ).stdout.strip(),
            "shared": "the machine is shared with other work: see the load averages",
        },
        "config": {k: v for k, v in vars(args).items()},
        "load_average_start": load_average(),
    }
    progress("bench: measuring ceilings U and C")
    ceilings = {c.name: c.value for c in noop_ceilings(work, args)}
    u, c = ceilings["grpc_noop_direct"], ceilings["envoy_noop_http"]
    result["ceilings"] = {"U": round(u, 1), "C": round(c, 1)}
    stack = Stack(
        settings_on_free_ports(work / "stack", start_timeout=120),
        extra_env={"CJ_LOG_LEVEL": "warning", "CJ_OUTBOX_BATCH_SIZE": "500"},
        say=lambda m: progress(f"stack: {m}"),
    )
    try:
        stack.start()
        target = own_target(stack)
        if not args.only or "ai-throughput" in args.only:
            progress("bench: ai-throughput")
            result["throughput"] = throughput(target, args, u, work)
            fresh_bus(stack)
        if not args.only or "ai-latency" in args.only:
            progress("bench: ai-latency")
            result["latency"] = latency(target, args, c, stack.wait_consumed)
    finally:
        stack.stop()
    text = summary(result)
    result["summary"] = text
    print(text)
    if not args.no_save:
        print(f"\nresult: {save(result, stamp)} (and {LATEST})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
