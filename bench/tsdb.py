"""Time-series benchmark (make bench-tsdb; docs/tsdb.md has the figures).

Measures, on one machine and in one run, against the ceilings that run measures:

* P: PostgreSQL's 100-row-per-transaction insert rate (pgbench, bench/pg_ceiling.py);
* C: Envoy -> no-op gRPC servicer requests/s (bench/__main__.noop_ceilings);
* the writer's sustained points/s (PostgresPointWriter, batches of --batch points: insert,
  minute and hour rollups, latest values, one transaction each), while it seeds the store:
  --devices devices x --days days at one reading per 10 s, time-major like a live fleet;
* series reads through Envoy at 0.03 x C req/s open loop each (latency from the scheduled
  send time, so a slow answer delays no later request's clock): 24 h in 1-minute buckets (all
  seven aggregates, and the average only),
  7 days in 1-hour buckets, latest values; one random device per request;
* bytes on disk per point: the points' partitions, and points plus rollups.

Envoy runs without authentication here (the edge's JWT cost is measured by `make bench`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import uvloop

from bench.loadgen import HttpConnection
from bench.pg_ceiling import measure_pg
from services.cli.embedded import EmbeddedBroker, EmbeddedEnvoy, EmbeddedPostgres, python_service
from services.cli.envoy_config import render
from services.cli.processes import env_with, free_port, port_open, wait_until
from services.infra import migrations
from services.tsdb.points_store import PostgresPointWriter
from services.tsdb.series import Point, floor_time

STEP = timedelta(seconds=10)
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the processes (/proc), seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def tree(pid: int) -> list[int]:
    """pid and its children (PostgreSQL's backends are the postmaster's children)."""
    out = [pid]
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(p.name))
            except OSError:
                continue
    return out


def served(metrics_url: str, method: str) -> tuple[float, int, dict[float, int]]:
    """The tsdb process's own time for ``method``: (seconds summed, calls, calls per
    histogram bound), from its Prometheus histogram (the time inside the servicer)."""
    text = httpx.get(metrics_url, timeout=5).text
    total, count, buckets = 0.0, 0, {}
    label = f'method="{method}"'
    for line in text.splitlines():
        if label not in line:
            continue
        name, value = line.rsplit(" ", 1)
        if name.startswith("cornjacket_grpc_request_seconds_sum"):
            total = float(value)
        elif name.startswith("cornjacket_grpc_request_seconds_count"):
            count = int(float(value))
        elif name.startswith("cornjacket_grpc_request_seconds_bucket"):
            bound = name.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(bound)] = int(float(value))
    return total, count, buckets


@dataclass
class Cost:
    """What one read run cost, measured in ways the machine's load changes little."""

    requests: int
    service_ms: float  # mean time inside the tsdb servicer (its histogram)
    service_p99_bound_ms: float  # the histogram bound at or above the p99
    cpu_ms: dict[str, float]  # CPU per request of each process
    load: tuple[float, float]  # 1-minute load average at the start and the end


def seed(
    url: str,
    devices: int,
    days: float,
    batch: int,
    end: datetime,
    names: list[str] | None = None,
) -> tuple[int, float]:
    """Write the history through the writer's own adapter; returns (points, seconds)."""
    writer = PostgresPointWriter(url)
    start = end - timedelta(days=days)
    rng = random.Random(42)
    names = names or [f"device-{i:04d}" for i in range(devices)]
    pending: list[Point] = []
    written, busy = 0, 0.0
    t = start
    last_report = time.monotonic()
    while t < end:
        for d in names:
            pending.append(Point(d, "value", t, rng.uniform(10, 30), str(uuid.uuid4())))
            if len(pending) >= batch:
                t0 = time.perf_counter()
                written += writer.write(pending)
                busy += time.perf_counter() - t0
                pending = []
        t += STEP
        if time.monotonic() - last_report > 15:
            last_report = time.monotonic()
            print(f"  seeded {written:,} points ({written / busy:,.0f} points/s)", flush=True)
    if pending:
        t0 = time.perf_counter()
        written += writer.write(pending)
        busy += time.perf_counter() - t0
    writer.close()
    return written, busy


def seed_day(url: str, device: str = "device-0000") -> tuple[datetime, datetime]:
    """One device with a day of readings (one per 10 s, through the writer's own adapter),
    ending now: what `make bench`'s series scenario reads. Returns (start, end)."""
    end = floor_time(datetime.now(UTC), STEP)
    seed(url, 1, 1, 1000, end, names=[device])
    return end - timedelta(days=1), end


def series_path(
    device: str, start: datetime, end: datetime, bucket: str, aggregates: str = ""
) -> str:
    """The REST path of a series read of ``device``'s "value" in ``bucket`` buckets (only
    ``aggregates``, e.g. "avg", when given; all seven otherwise)."""
    path = (
        f"/api/v1/devices/{device}/series/value?start={start.isoformat()}"
        f"&end={end.isoformat()}&bucket={bucket}"
    ).replace("+00:00", "Z")
    return f"{path}&aggregates={aggregates}" if aggregates else path


def disk_bytes(url: str) -> tuple[int, int, int]:
    """(points bytes, rollup bytes, points) over every partition, indexes included."""
    with psycopg.connect(url) as conn:

        def size(table: str) -> int:
            row = conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(i.inhrelid)), 0) FROM pg_inherits i "
                "WHERE i.inhparent = %s::regclass",
                (table,),
            ).fetchone()
            return int(row[0]) if row else 0

        n = conn.execute("SELECT count(*) FROM tsdb.points").fetchone()
        rollups = size("tsdb.rollup_1m") + size("tsdb.rollup_1h")
        rollups += int(
            (conn.execute("SELECT pg_total_relation_size('tsdb.latest')").fetchone() or (0,))[0]
        )
        return size("tsdb.points"), rollups, int(n[0]) if n else 0


async def open_loop(
    base: str, paths: list[str], rate: float, duration: float
) -> tuple[list[float], int]:
    """Requests at ``rate``/s for ``duration`` s; latencies (ms) from each scheduled time.

    The client is the load generator's (bench/loadgen.HttpConnection on uvloop: keep-alive
    connections, a few microseconds per call), the one the Envoy ceiling C is measured with,
    so the figures are the server's and not a heavy client's (httpx added ~3 ms at p50)."""
    host, _, port = base.removeprefix("http://").rpartition(":")
    latencies: list[float] = []
    errors = 0
    idle: list[HttpConnection] = []
    t0 = time.perf_counter()
    n = int(rate * duration)
    tasks = []

    async def one(i: int, due: float) -> None:
        nonlocal errors
        conn = idle.pop() if idle else HttpConnection(host, int(port))
        try:
            status, _ = await asyncio.wait_for(conn.request("GET", paths[i % len(paths)]), 10)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            errors += 1  # an overloaded machine: an error, not a crash
            if conn.writer is not None:
                conn.writer.close()
        else:
            errors += status != 200
            idle.append(conn)
        latencies.append((time.perf_counter() - due) * 1000)

    for i in range(n):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    for conn in idle:
        if conn.writer is not None:
            conn.writer.close()
    return latencies, errors


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=30)
    parser.add_argument("--days", type=float, default=7)
    parser.add_argument("--batch", type=int, default=1000, help="points per write (default 1000)")
    parser.add_argument("--duration", type=float, default=20, help="seconds per query run")
    parser.add_argument("--ceiling-duration", type=float, default=10)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="read requests/s (default 0: 0.03 x C of this run; a fixed rate compares runs "
        "whose C differs with the machine's load)",
    )
    args = parser.parse_args(argv)
    end = floor_time(datetime.now(UTC), STEP)
    with tempfile.TemporaryDirectory(prefix="cj-bench-tsdb-") as tmp:
        work = Path(tmp)
        pg = EmbeddedPostgres(work / "pg", free_port(), work / "pg.log")
        pg.start()
        broker = EmbeddedBroker(free_port(), work / "broker.log")
        children = []
        envoy = None
        try:
            url = pg.url
            print("ceilings ...", flush=True)
            p = next(
                c for c in measure_pg(url, args.ceiling_duration) if c.name == "pg_insert_batch100"
            ).value
            from bench.__main__ import noop_ceilings

            c = next(x for x in noop_ceilings(work, args) if x.name == "envoy_noop_http").value
            print(f"  P = {p:,.0f} rows/s (100-row transactions), C = {c:,.0f} req/s", flush=True)
            migrations.apply(url, "tsdb")
            print(
                f"seeding {args.devices} devices x {args.days:g} days, 1 reading / 10 s ...",
                flush=True,
            )
            points, busy = seed(url, args.devices, args.days, args.batch, end)
            rate = points / busy
            pts_bytes, roll_bytes, n = disk_bytes(url)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")
            broker.start()
            port, metrics_port = free_port(), free_port()
            tsdb = python_service(
                "tsdb",
                "tsdb",
                env_with(
                    {
                        "CJ_TSDB_DATABASE_URL": url,
                        "CJ_REDPANDA_BROKERS": broker.bootstrap,
                        "CJ_TSDB_PORT": str(port),
                        "CJ_TSDB_METRICS_PORT": str(metrics_port),
                        "CJ_LOG_FORMAT": "json",
                    }
                ),
                work / "tsdb.log",
            )
            children.append(tsdb)
            tsdb.start()
            edge = free_port()
            config = work / "envoy.yaml"
            config.write_text(
                render(
                    edge_port=edge, admin_port=free_port(), upstreams={"tsdb": ("127.0.0.1", port)}
                )
            )
            envoy = EmbeddedEnvoy(config, work / "envoy.log")
            envoy.start()
            base = f"http://127.0.0.1:{edge}"
            wait_until(lambda: port_open("127.0.0.1", edge), 30, what="Envoy")

            def ready() -> bool:
                try:
                    return (
                        httpx.get(
                            base + "/api/v1/devices/device-0000/latest", timeout=2
                        ).status_code
                        == 200
                    )
                except httpx.HTTPError:
                    return False

            wait_until(ready, 60, what="the series API through Envoy")
            q_rate = args.rate or 0.03 * c
            rng = random.Random(7)
            devs = [f"device-{rng.randrange(args.devices):04d}" for _ in range(1000)]
            day_ago, week_ago = end - timedelta(days=1), end - timedelta(days=min(7, args.days))
            queries = {
                "24 h in 1 m buckets": [series_path(d, day_ago, end, "1m") for d in devs],
                # What a chart asks for: one aggregate (every bucket's average), a quarter of
                # the answer's bytes (most of a 24 h read's cost is building and transcoding
                # its columns).
                "24 h in 1 m buckets, avg only": [
                    series_path(d, day_ago, end, "1m", "avg") for d in devs
                ],
                "7 d in 1 h buckets": [series_path(d, week_ago, end, "1h") for d in devs],
                "latest values": [f"/api/v1/devices/{d}/latest" for d in devs],
            }
            assert tsdb.pid and envoy.child and envoy.child.pid
            postmaster = pg.postmaster_pid()
            assert postmaster
            pids = {"tsdb": [tsdb.pid], "envoy": [envoy.child.pid], "postgres": tree(postmaster)}
            metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
            results = {}
            costs: dict[str, Cost] = {}
            for name, paths in queries.items():
                method = "GetLatest" if "latest" in name else "GetSeries"
                uvloop.run(open_loop(base, paths, q_rate, 3))  # warm-up
                pids["postgres"] = tree(postmaster)  # the pool's backends by now
                # Each process's CPU while idle (the writer's polls, health checks, the
                # pool's pings), taken off what the run spent: at 12 req/s it would be a
                # large share of the CPU per request.
                idle0, t_idle = {k: cpu_seconds(v) for k, v in pids.items()}, time.monotonic()
                time.sleep(5)
                idle_rate = {
                    k: (cpu_seconds(v) - idle0[k]) / (time.monotonic() - t_idle)
                    for k, v in pids.items()
                }
                load0 = os.getloadavg()[0]
                cpu0 = {k: cpu_seconds(v) for k, v in pids.items()}
                t_run = time.monotonic()
                s0, n0, b0 = served(metrics_url, method)
                lat, errors = uvloop.run(open_loop(base, paths, q_rate, args.duration))
                s1, n1, b1 = served(metrics_url, method)
                cpu1 = {k: cpu_seconds(v) for k, v in pids.items()}
                run_s = time.monotonic() - t_run
                calls = max(1, n1 - n0)
                p99_bound = min(
                    (le for le in b1 if (b1[le] - b0.get(le, 0)) >= 0.99 * calls),
                    default=float("inf"),
                )
                costs[name] = Cost(
                    len(lat),
                    (s1 - s0) * 1000 / calls,
                    p99_bound * 1000,
                    {
                        k: max(0.0, cpu1[k] - cpu0[k] - idle_rate[k] * run_s) * 1000 / len(lat)
                        for k in pids
                    },
                    (load0, os.getloadavg()[0]),
                )
                results[name] = (lat, errors)
                print(
                    f"  {name}: p50 {pct(lat, 0.5):.1f} ms, p99 {pct(lat, 0.99):.1f} ms, "
                    f"{len(lat)} requests, {errors} errors",
                    flush=True,
                )
            print("\n## TSDB benchmark\n")
            print(
                f"- P (pgbench, 100-row transactions): {p:,.0f} rows/s; "
                f"C (Envoy -> no-op): {c:,.0f} req/s"
            )
            print(
                f"- writer: {points:,} points in {busy:.1f} s of writes = {rate:,.0f} points/s "
                f"= {rate / p:.2f} x P (goal >= 0.3 x P), batches of {args.batch}"
            )
            print(
                f"- disk: {pts_bytes / n:.0f} bytes/point for the points (indexes included), "
                f"{(pts_bytes + roll_bytes) / n:.0f} with the rollups and latest values"
            )
            print(
                f"- reads at {q_rate:.0f} req/s open loop ({q_rate / c:.3f} x C), "
                f"{args.duration:g} s each:"
            )
            for name, (lat, errors) in results.items():
                print(
                    f"  - {name}: p50 {pct(lat, 0.5):.1f} ms, p99 {pct(lat, 0.99):.1f} ms, "
                    f"max {max(lat):.1f} ms, mean {statistics.fmean(lat):.1f} ms, {errors} errors"
                )
            print(
                "- the same runs measured in ways the machine's load changes little: time inside "
                "the tsdb servicer (its histogram: mean, and the bucket bound holding 99%), CPU "
                "per request of each process over its idle CPU (/proc), the 1-minute load "
                "average at start/end:"
            )
            for name, cost in costs.items():
                cpu = ", ".join(f"{k} {v:.2f}" for k, v in cost.cpu_ms.items())
                print(
                    f"  - {name}: servicer mean {cost.service_ms:.2f} ms, p99 <= "
                    f"{cost.service_p99_bound_ms:g} ms; CPU ms/request: {cpu} "
                    f"(total {sum(cost.cpu_ms.values()):.2f}); load {cost.load[0]:.1f} -> "
                    f"{cost.load[1]:.1f}"
                )
            return 0
        finally:
            if envoy is not None:
                envoy.stop()
            for child in children:
                child.stop(deadline=10)
            broker.stop()
            pg.stop()


if __name__ == "__main__":
    sys.exit(main())
