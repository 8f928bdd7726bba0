"""Where a series read's time goes, step by step (docs/tsdb.md "Where the time goes").

Seeds a small store with the writer's adapter (bench/tsdb.py's seed), starts the tsdb service
and an Envoy like bench/tsdb.py's, then times each of the three reads of issue 17 (24 h in
1-minute buckets, 7 d in 1-hour buckets, latest values) one request at a time, closed loop:

* ``sql``: the reader's statement on one connection of this process (psycopg, binary rows);
* ``server``: PostgreSQL's own execution time (EXPLAIN ANALYZE), and the plan once;
* ``reader``: the PostgreSQL adapter through a pool (checkout, statement, rows to columns);
* ``servicer``: the gRPC servicer in this process (validation, plan, reader, Protobuf);
* ``serialize``: the answer's Protobuf encoding;
* ``grpc``: the tsdb process over gRPC from this process;
* ``http to Envoy only (404)``: the HTTP client and Envoy without the service;
* ``grpc via Envoy``: native gRPC through Envoy (no transcoding);
* ``envoy``: HTTP/JSON through Envoy (transcoding) to the tsdb process;

and the CPU time the tsdb process, Envoy and PostgreSQL each spent per request of the
``envoy`` step (/proc: utime + stime), which the machine's load changes much less than
latency. Medians and p90 of ``--n`` requests per step.
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
import psycopg
from cornjacket.v1 import series_pb2, series_pb2_grpc

from bench.tsdb import STEP, cpu_seconds, seed, tree
from services.cli.embedded import EmbeddedBroker, EmbeddedEnvoy, EmbeddedPostgres, python_service
from services.cli.envoy_config import render
from services.cli.processes import env_with, free_port, port_open, wait_until
from services.infra import migrations
from services.infra.postgres import open_pool
from services.tsdb import series_reader
from services.tsdb.grpc_api import SeriesServicer
from services.tsdb.series import SeriesQuery, floor_time, parse_bucket, plan
from services.tsdb.series_reader import PostgresSeriesReader
from services.tsdb.service import MAX_LATEST, SeriesService


async def timed(n: int, call: Callable[[int], Awaitable[Any]]) -> list[float]:
    for i in range(min(20, n)):  # warm-up: pool, prepared statements
        await call(i)
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        await call(i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def summary(ms: list[float]) -> str:
    ordered = sorted(ms)
    return (
        f"p50 {statistics.median(ms):6.2f}  p90 {ordered[int(0.9 * len(ordered))]:6.2f}  "
        f"mean {statistics.fmean(ms):6.2f} ms"
    )


class _Context:
    """Enough of grpc.aio.ServicerContext for the servicer outside a server."""

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise RuntimeError(f"{code}: {details}")


@dataclass
class Read:
    """One of the three reads, as each step calls it for the i-th device."""

    sql: str
    params: Callable[[str], Any]
    reader: Callable[[str], Awaitable[object]]
    request: Callable[[str], Any]
    servicer: Callable[[Any, Any], Awaitable[Any]]
    rpc: Callable[[Any], Awaitable[Any]]
    path: Callable[[str], str]
    edge_rpc: Callable[[Any], Awaitable[Any]]


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def series_read(
    reader: PostgresSeriesReader,
    servicer: SeriesServicer,
    stub: series_pb2_grpc.SeriesServiceStub,
    edge: series_pb2_grpc.SeriesServiceStub,
    start: datetime,
    end: datetime,
    bucket: str,
) -> Read:
    def query(d: str) -> SeriesQuery:
        return SeriesQuery(d, "value", start, end, parse_bucket(bucket))

    def params(d: str) -> Any:
        return series_reader.buckets_statement(query(d), plan(query(d)))[1]

    async def read(d: str) -> object:
        return await reader.buckets(query(d), plan(query(d)))

    def request(d: str) -> Any:
        return series_pb2.GetSeriesRequest(
            device=d, metric="value", start=iso(start), end=iso(end), bucket=bucket
        )

    def path(d: str) -> str:
        return f"/api/v1/devices/{d}/series/value?start={iso(start)}&end={iso(end)}&bucket={bucket}"

    sql = series_reader.buckets_statement(query("d"), plan(query("d")))[0]
    return Read(
        sql, params, read, request, servicer.GetSeries, stub.GetSeries, path, edge.GetSeries
    )


def latest_read(
    reader: PostgresSeriesReader,
    servicer: SeriesServicer,
    stub: series_pb2_grpc.SeriesServiceStub,
    edge: series_pb2_grpc.SeriesServiceStub,
) -> Read:
    async def read(d: str) -> object:
        return await reader.latest(d, MAX_LATEST + 1)

    return Read(
        series_reader.LATEST_SQL,
        lambda d: (d, MAX_LATEST + 1),
        read,
        lambda d: series_pb2.GetLatestRequest(device=d),
        servicer.GetLatest,
        stub.GetLatest,
        lambda d: f"/api/v1/devices/{d}/latest",
        edge.GetLatest,
    )


async def measure(
    read: Read,
    conn: psycopg.AsyncConnection[Any],
    http: httpx.AsyncClient,
    devices: list[str],
    n: int,
    pids: dict[str, list[int]],
) -> None:
    def dev(i: int) -> str:
        return devices[i % len(devices)]

    results: dict[str, list[float]] = {}

    async def via_sql(i: int) -> object:
        cur = await conn.execute(read.sql, read.params(dev(i)), binary=True)
        return await cur.fetchall()

    results["sql"] = await timed(n, via_sql)
    explain = await conn.execute(
        "EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) " + read.sql, read.params(devices[0])
    )
    plan_text = [r[0] for r in await explain.fetchall()]
    server = []
    for i in range(min(n, 50)):
        cur = await conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + read.sql, read.params(dev(i)))
        row = await cur.fetchone()
        assert row is not None
        server.append(float(row[0][0]["Execution Time"]) + row[0][0]["Planning Time"])
    results["server (plan+execute)"] = server

    async def via_reader(i: int) -> object:
        return await read.reader(dev(i))

    results["reader"] = await timed(n, via_reader)
    reqs = [read.request(d) for d in devices]
    ctx = _Context()

    async def via_servicer(i: int) -> object:
        return await read.servicer(reqs[i % len(reqs)], ctx)

    results["servicer"] = await timed(n, via_servicer)
    answer = await read.servicer(reqs[0], ctx)

    async def serialize(i: int) -> object:
        return answer.SerializeToString()

    results["serialize"] = await timed(n, serialize)

    async def via_grpc(i: int) -> object:
        return await read.rpc(reqs[i % len(reqs)])

    results["grpc"] = await timed(n, via_grpc)
    paths = [read.path(d) for d in devices]

    async def via_envoy(i: int) -> object:
        r = await http.get(paths[i % len(paths)])
        assert r.status_code == 200, r.text
        return r

    async def edge_only(i: int) -> object:
        r = await http.get("/api/v1/not-a-route")  # Envoy answers 404 itself
        assert r.status_code == 404, r.status_code
        return r

    results["http to Envoy only (404)"] = await timed(n, edge_only)

    async def grpc_via_envoy(i: int) -> object:
        return await read.edge_rpc(reqs[i % len(reqs)])

    results["grpc via Envoy"] = await timed(n, grpc_via_envoy)
    before = {k: cpu_seconds(v) for k, v in pids.items()}
    results["envoy"] = await timed(n, via_envoy)
    after = {k: cpu_seconds(v) for k, v in pids.items()}
    size = len((await http.get(paths[0])).content)
    for step, ms in results.items():
        print(f"  {step:24s} {summary(ms)}")
    cpu = ", ".join(f"{k} {(after[k] - before[k]) * 1000 / (n + 20):.2f}" for k in pids)
    print(f"  CPU ms per HTTP request: {cpu}; JSON answer {size:,} bytes")
    print(f"  answer: {len(answer.SerializeToString()):,} bytes Protobuf")
    print("  plan:\n    " + "\n    ".join(plan_text), flush=True)


async def steps(
    url: str,
    grpc_addr: str,
    base: str,
    devices: list[str],
    end: datetime,
    n: int,
    pids: dict[str, list[int]],
) -> None:
    async with (
        open_pool(url, max_size=4, acquire_timeout=5, name="steps") as pool,
        await psycopg.AsyncConnection.connect(url, autocommit=True) as conn,
        grpc.aio.insecure_channel(grpc_addr) as channel,
        grpc.aio.insecure_channel(base.removeprefix("http://")) as edge_channel,
        httpx.AsyncClient(base_url=base, timeout=10) as http,
    ):
        reader = PostgresSeriesReader(pool)
        servicer = SeriesServicer(SeriesService(reader, 10_000))
        stub = series_pb2_grpc.SeriesServiceStub(channel)
        edge = series_pb2_grpc.SeriesServiceStub(edge_channel)
        reads = {
            "24 h in 1 m buckets": series_read(
                reader, servicer, stub, edge, end - timedelta(days=1), end, "1m"
            ),
            "7 d in 1 h buckets": series_read(
                reader, servicer, stub, edge, end - timedelta(days=7), end, "1h"
            ),
            "latest values": latest_read(reader, servicer, stub, edge),
        }
        for name, read in reads.items():
            print(f"\n### {name}", flush=True)
            await measure(read, conn, http, devices, n, pids)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--days", type=float, default=7)
    parser.add_argument("--n", type=int, default=300, help="requests per step")
    args = parser.parse_args(argv)
    end = floor_time(datetime.now(UTC), STEP)
    with tempfile.TemporaryDirectory(prefix="cj-tsdb-steps-") as tmp:
        work = Path(tmp)
        pg = EmbeddedPostgres(work / "pg", free_port(), work / "pg.log")
        pg.start()
        broker = EmbeddedBroker(free_port(), work / "broker.log")
        tsdb = envoy = None
        try:
            url = pg.url
            migrations.apply(url, "tsdb")
            print(f"seeding {args.devices} devices x {args.days:g} days ...", flush=True)
            points, busy = seed(url, args.devices, args.days, 1000, end)
            print(f"  {points:,} points, {points / busy:,.0f} points/s", flush=True)
            with psycopg.connect(url, autocommit=True) as c:
                c.execute("VACUUM ANALYZE")
            broker.start()
            port = free_port()
            tsdb = python_service(
                "tsdb",
                "tsdb",
                env_with(
                    {
                        "CJ_TSDB_DATABASE_URL": url,
                        "CJ_REDPANDA_BROKERS": broker.bootstrap,
                        "CJ_TSDB_PORT": str(port),
                        "CJ_TSDB_METRICS_PORT": "0",
                        "CJ_LOG_FORMAT": "json",
                    }
                ),
                work / "tsdb.log",
            )
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
                    r = httpx.get(base + "/api/v1/devices/device-0000/latest", timeout=2)
                    return r.status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(ready, 60, what="the series API through Envoy")
            rng = random.Random(7)
            devs = [f"device-{rng.randrange(args.devices):04d}" for _ in range(100)]
            assert tsdb.pid and envoy.child and envoy.child.pid
            postmaster = pg.postmaster_pid()
            assert postmaster
            pids = {
                "tsdb": [tsdb.pid],
                "envoy": [envoy.child.pid],
                "postgres": tree(postmaster),
            }
            print(f"load average before: {os.getloadavg()}")
            asyncio.run(steps(url, f"127.0.0.1:{port}", base, devs, end, args.n, pids))
            print(f"\nload average after: {os.getloadavg()}")
            return 0
        finally:
            if envoy is not None:
                envoy.stop()
            if tsdb is not None:
                tsdb.stop(deadline=10)
            broker.stop()
            pg.stop()


if __name__ == "__main__":
    sys.exit(main())
