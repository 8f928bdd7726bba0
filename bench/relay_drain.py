"""The relay alone: how fast the outbox relay of this checkout empties a filled outbox.

`.venv/bin/python -m bench.relay_drain --rows 30000 --rounds 3`

Starts its own PostgreSQL and broker (scratch dir), and per round: a fresh database, the
outbox filled as the benchmark's gRPC batch scenario fills it (500 events per commit over
1,000 aggregates), then the `Relay` (4 workers, batches of 500 by default; `--relays 2` runs two
replicas side by side, each a process with its own pool and producer) until the outbox is empty.
Prints events/s, claims per batch (above 1: claims came back empty, e.g. workers locked out
of each other's slots; batches per relay) and the time per claim and per publish.

End-to-end runs on a shared machine swing too much to show a relay regression (see
docs/performance.md, "Per-aggregate order: relay cost"); this isolates the relay. For an
A/B, run it in a worktree of each version, alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from services.cli.embedded import EmbeddedBroker, EmbeddedPostgres
from services.cli.processes import free_port
from services.core.errors import InvalidInput
from services.core.events import Event, Publication
from services.infra import migrations
from services.infra.kafka import RELAY_PUBLISH_TIMEOUT, KafkaPublisher, ensure_topics
from services.infra.postgres import open_pool
from services.ingestion.relay import ClaimedBatch, Publisher, Relay, RelayStore
from services.ingestion.relay_store import PostgresRelayStore

_FILL = """
INSERT INTO ingestion.outbox (outbox_id, created_at, event_payload)
SELECT (e->>'event_id')::uuid, (e->>'ingested_at')::timestamptz, e
FROM jsonb_array_elements(%s::jsonb) AS e
"""


class TimedStore:
    """A RelayStore that counts claims (and empty ones) and times each claim statement."""

    def __init__(self, inner: RelayStore) -> None:
        self.inner = inner
        self.claims = 0
        self.empty = 0
        self.claim_seconds: list[float] = []

    def claim(self, limit: int) -> AbstractAsyncContextManager[ClaimedBatch]:
        return self._claim(limit)

    @asynccontextmanager
    async def _claim(self, limit: int) -> AsyncIterator[ClaimedBatch]:
        start = time.perf_counter()
        async with self.inner.claim(limit) as batch:
            self.claim_seconds.append(time.perf_counter() - start)
            self.claims += 1
            self.empty += not batch.rows
            yield batch


class TimedPublisher:
    def __init__(self, inner: Publisher) -> None:
        self.inner = inner
        self.seconds: list[float] = []

    async def publish(self, events: Sequence[Event]) -> Sequence[Publication | InvalidInput]:
        start = time.perf_counter()
        try:
            return await self.inner.publish(events)
        finally:
            self.seconds.append(time.perf_counter() - start)


def fill(url: str, rows: int) -> None:
    now = datetime.now(UTC).isoformat()
    with psycopg.connect(url, autocommit=True) as conn:
        for first in range(0, rows, 500):
            events = [
                {
                    "event_id": str(uuid.uuid4()),
                    "event_type": "sensor.reading",
                    "aggregate_id": f"bench-{(i * 7919) % 1000}",
                    "event_time": now,
                    "ingested_at": now,
                    "payload": {"value": float(i), "unit": "C"},
                    "metadata": {},
                }
                for i in range(first, min(first + 500, rows))
            ]
            conn.execute(_FILL, (json.dumps(events),))


async def _replica(url: str, bootstrap: str, args: argparse.Namespace, go: Any) -> dict[str, Any]:
    """One relay replica until the outbox is empty: its counts and timings."""
    producer = KafkaPublisher(bootstrap)
    publisher = TimedPublisher(producer)
    try:
        async with open_pool(url, max_size=args.workers + 1, acquire_timeout=10, name="r") as pool:
            store = TimedStore(PostgresRelayStore(pool))
            relay = Relay(
                store,
                publisher,
                batch_size=args.batch,
                max_retries=5,
                worker_count=args.workers,
                poll_interval=5.0,
                publish_timeout=RELAY_PUBLISH_TIMEOUT,
                linger=0.03,
            )
            await asyncio.to_thread(go.wait)  # every replica starts at once
            start = time.perf_counter()
            task = asyncio.create_task(relay.run())
            while True:
                async with pool.connection() as conn:
                    cur = await conn.execute("SELECT count(*) AS n FROM ingestion.outbox")
                    row = await cur.fetchone()
                if row is None or row["n"] == 0:
                    break
                await asyncio.sleep(0.05)
            end = time.perf_counter()
            relay.stop()
            await task
    finally:
        producer.close()
    return {
        "start": start,
        "end": end,
        "claims": store.claims,
        "empty": store.empty,
        "claim_seconds": store.claim_seconds,
        "publish_seconds": publisher.seconds,
    }


def _replica_process(url: str, bootstrap: str, args: argparse.Namespace, go: Any, out: Any) -> None:
    out.put(asyncio.run(_replica(url, bootstrap, args, go)))


def drain(url: str, bootstrap: str, args: argparse.Namespace) -> str:
    # --relays N: N relay replicas, each a process of its own with its pool and producer (as
    # `cornjacket up --replicas relay=N` runs them), started together.
    ctx = multiprocessing.get_context("spawn")
    go, out = ctx.Barrier(args.relays), ctx.Queue()
    procs = [
        ctx.Process(target=_replica_process, args=(url, bootstrap, args, go, out))
        for _ in range(args.relays)
    ]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    elapsed = max(r["end"] for r in results) - min(r["start"] for r in results)
    claims = sum(r["claims"] for r in results)
    batches = claims - sum(r["empty"] for r in results)
    claim_seconds = [t for r in results for t in r["claim_seconds"]]
    publish_seconds = [t for r in results for t in r["publish_seconds"]] or [0.0]
    per_relay = "/".join(str(r["claims"] - r["empty"]) for r in results)
    return (
        f"{args.rows / elapsed:,.0f} events/s ({elapsed:.2f} s); {claims} claims for "
        f"{batches} batches ({claims / max(batches, 1):.2f} per batch; per relay {per_relay}); "
        f"claim median {statistics.median(claim_seconds) * 1000:.1f} ms, publish median "
        f"{statistics.median(publish_seconds) * 1000:.1f} ms"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.relay_drain", description=__doc__)
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--relays", type=int, default=1, help="relay replicas side by side")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="cj-relay-drain-"))
    pg = EmbeddedPostgres(work / "pgdata", free_port(), work / "postgres.log")
    broker = EmbeddedBroker(free_port(), work / "broker.log")
    pg.start()
    try:
        broker.start()
        try:
            ensure_topics(broker.bootstrap, ["sensor-events"], 3)
            for n in range(1, args.rounds + 1):
                name = f"drain_{uuid.uuid4().hex[:10]}"
                with psycopg.connect(pg.admin_url, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                url = pg.url_for(name)
                migrations.apply(url, "ingestion")
                fill(url, args.rows)
                print(f"round {n}: {drain(url, broker.bootstrap, args)}", flush=True)
        finally:
            broker.stop()
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
