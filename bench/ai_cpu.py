"""The inference consumer's own cost per reading, A/B on one machine (issue 18's speed goals).

`python -m bench.ai_cpu` drives the service's core as its consumer loop does (decode each
message, ``Inference.handle``: applied check, model rows, scoring, one checkpoint
transaction, anomalies sent) over a real PostgreSQL (embedded, its own data directory), and
measures CPU, not wall-clock: this process's CPU (time.process_time) and the CPU of the
PostgreSQL backend serving its connection (/proc/<pid>/stat), per reading. CPU per reading
changes little with the machine's load, which a shared 2-core machine makes unavoidable;
the wall time per batch is printed too but is not comparable between runs.

Two shapes, as the speed bench makes them: ``throughput`` (1,000 devices, batches of 2,000
readings: the consumer behind under load) and ``latency`` (200 devices, batches of 5: a
paced load it keeps up with). To compare with an older version of the service, run the same
file with that version's ``services`` first on PYTHONPATH (e.g. ``git archive <commit>
services | tar -x -C /tmp/old``); it uses only ``Inference`` and ``PostgresInferenceStore``,
and the model cache when the version has one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from services.cli.embedded import EmbeddedPostgres
from services.cli.processes import free_port
from services.core.events import Event
from services.inference.service import Inference, Message
from services.inference.store import PostgresInferenceStore
from services.infra import migrations
from services.infra.codec import decode_event, encode_event

SHAPES = {"throughput": (1000, 2000, 20), "latency": (200, 5, 400)}  # devices, batch, batches
T0 = datetime(2026, 5, 1, tzinfo=UTC)
TICKS = os.sysconf("SC_CLK_TCK")


class _Sink:
    def send(self, anomalies: Any) -> list[Any]:
        return [str(uuid.uuid4()) for _ in anomalies]


def _backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def run(url: str, shape: str) -> dict[str, float]:
    devices, batch, batches = SHAPES[shape]
    migrations.apply(url, "inference")
    db = PostgresInferenceStore(url, "ai-cpu")
    store: Any = db
    cache = None
    try:
        from services.inference.cache import CachedInferenceStore  # this version's cache

        store = cache = CachedInferenceStore(store, 20_000)
    except ImportError:
        pass
    inf = Inference(store, _Sink(), consumer="ai-cpu", warmup=50, threshold=0.5)
    raw: list[bytes] = []
    for i in range(batch * batches):
        t = T0 + timedelta(minutes=5 * (i // devices))
        d = f"dev-{i % devices:04d}"
        value = 20.0 + (i % 7) * 0.1 + (30.0 if i % 997 == 0 else 0.0)
        raw.append(
            encode_event(
                Event(str(uuid.uuid4()), "sensor.reading", d, t, t, {"temp": value, "unit": "C"})
            )
        )
    with psycopg.connect(url) as conn:
        conn.execute("SELECT 1")
    # The store's connection, opened by a first call (not timed).
    inf.handle([])
    row = db._connection().execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    backend = int(row[0])
    walls: list[float] = []
    cpu0, db0 = time.process_time(), _backend_cpu(backend)
    for b in range(batches):
        start = time.perf_counter()
        chunk = raw[b * batch : (b + 1) * batch]
        msgs = [
            Message("sensor-events", 0, b * batch + i, decode_event(r), r)
            for i, r in enumerate(chunk)
        ]
        inf.handle(msgs)
        walls.append(time.perf_counter() - start)
    cpu, db_cpu = time.process_time() - cpu0, _backend_cpu(backend) - db0
    n = batch * batches
    return {
        "readings": n,
        "cpu_us": cpu / n * 1e6,
        "db_us": db_cpu / n * 1e6,
        "wall_ms_p50": statistics.median(walls) * 1000,
        "cached": 0.0 if cache is None else 1.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), action="append")
    parser.add_argument("--url", help="a PostgreSQL server's admin URL (default: embedded)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cj-ai-cpu-"))
    pg = EmbeddedPostgres(work / "pgdata", free_port(), work / "postgres.log")
    pg.start()
    try:
        for shape in args.shape or ["throughput", "latency"]:
            name = f"ai_cpu_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(pg.admin_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            r = run(pg.url_for(name), shape)
            print(
                f"{shape}: {r['readings']:,.0f} readings, cache {'on' if r['cached'] else 'none'}:"
                f" inference {r['cpu_us']:.1f} us/reading, its PostgreSQL backend"
                f" {r['db_us']:.1f} us/reading; batch wall p50 {r['wall_ms_p50']:.1f} ms;"
                f" load average {os.getloadavg()}",
                flush=True,
            )
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
