"""PostgreSQL adapter for the relay: claiming, event store append, delete, failure count."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import psycopg

from services.core import json_text
from services.core.events import Event, Publication
from services.infra import metrics
from services.infra.kafka import RELAY_SESSION_TIMEOUT
from services.infra.postgres import DictPool, listen, translate_errors
from services.ingestion.relay import ClaimedBatch, OutboxRow

log = logging.getLogger(__name__)

# One worker per slot at a time, a slot's rows oldest first (ADR 18). outbox_claim_slots
# (migration 010) tries the slots that have rows in the order of their oldest row, locks
# only as many as the batch needs (pg_try_advisory_xact_lock never waits, and the lock goes
# with the commit, the rollback or the connection) and returns each held slot's oldest rows
# FOR UPDATE, read after its lock: a claim used to lock a fixed share of the 64 slots, so
# one relay's workers held them all and a second replica got nothing (ADR 18, "Cost").
# FOR UPDATE re-reads each row: a row another worker deleted meanwhile (it owned the slot a
# moment ago) is skipped, not sent again.
_CLAIM = """
SELECT claimed_id AS outbox_id, claimed_payload AS event_payload, claimed_retries AS retry_count
FROM ingestion.outbox_claim_slots(%(key)s, %(limit)s)
ORDER BY claimed_seq
"""
# A relay whose process or host vanished mid-batch must give its slots up even if its
# connection is not seen to close: well above the relay's own bound on a batch's publish,
# both derived from the producer's message timeout (kafka.RELAY_SESSION_TIMEOUT).
_BATCH_TIMEOUT = (
    f"SET LOCAL idle_in_transaction_session_timeout = '{int(RELAY_SESSION_TIMEOUT * 1000)}ms'"
)
# The first key of the slots' advisory locks ("cj"); the slot number is the second.
SLOT_LOCK_KEY = 0x636A
# Copied inside the database from the claimed rows: no per-event parameters from Python.
_APPEND = """
INSERT INTO ingestion.event_store
    (event_id, event_type, aggregate_id, event_time, ingested_at, payload, metadata)
SELECT (p->>'event_id')::uuid, p->>'event_type', p->>'aggregate_id',
       (p->>'event_time')::timestamptz, (p->>'ingested_at')::timestamptz,
       p->'payload', p->'metadata'
FROM (SELECT event_payload AS p FROM ingestion.outbox WHERE outbox_id = ANY(%s::uuid[])) AS rows
ON CONFLICT (event_id) DO NOTHING
"""


_DELETE_AND_RECORD = """
WITH recorded AS (
    INSERT INTO ingestion.event_publications (event_id, topic, "partition", "offset")
    SELECT e, t, p, o FROM jsonb_to_recordset(%s::jsonb) AS x(e uuid, t text, p int, o bigint)
    ON CONFLICT DO NOTHING
)
DELETE FROM ingestion.outbox WHERE outbox_id = ANY(%s::uuid[])
"""


# Out of the outbox into the poison rows, in the batch's transaction; the rows stay locked
# by this transaction's claim, so no other relay can hold them meanwhile.
_SET_ASIDE = """
WITH why AS (
    SELECT i, e FROM jsonb_to_recordset(%s::jsonb) AS x(i uuid, e text)
), moved AS (
    DELETE FROM ingestion.outbox o USING why WHERE o.outbox_id = why.i
    RETURNING o.outbox_id, o.created_at, o.event_payload, o.retry_count, why.e
)
INSERT INTO ingestion.outbox_poison
    (outbox_id, created_at, event_payload, retry_count, last_error)
SELECT outbox_id, created_at, event_payload, retry_count + 1, e FROM moved
ON CONFLICT (outbox_id) DO UPDATE SET
    event_payload = EXCLUDED.event_payload, retry_count = EXCLUDED.retry_count,
    last_error = EXCLUDED.last_error, poisoned_at = now()
"""


def _row(raw: dict[str, Any]) -> OutboxRow:
    try:
        event = Event.from_dict(raw["event_payload"])
        return OutboxRow(str(raw["outbox_id"]), event, raw["retry_count"])
    except (KeyError, TypeError, ValueError) as e:
        return OutboxRow(str(raw["outbox_id"]), None, raw["retry_count"], f"unreadable: {e}")


class _Batch:
    def __init__(
        self, cur: psycopg.AsyncCursor[Any], pipeline: psycopg.AsyncPipeline, rows: list[OutboxRow]
    ) -> None:
        self._cur = cur
        self._pipeline = pipeline
        self.rows = rows
        self._outbox_id = {r.event.event_id: r.outbox_id for r in rows if r.event is not None}
        self._publications = "[]"

    async def append_to_event_store(self, events: Sequence[Event]) -> None:
        ids = [self._outbox_id[e.event_id] for e in events]
        await self._cur.execute(_APPEND, (ids,))
        # Wait for the append before anything is published: an event is in the store
        # before it is on the bus, and a failed append publishes nothing.
        await self._pipeline.sync()

    async def record_publications(self, publications: Sequence[Publication]) -> None:
        # Sent with the delete that follows: one round trip for both (same transaction).
        self._publications = json_text.dumps(
            [{"e": p.event_id, "t": p.topic, "p": p.partition, "o": p.offset} for p in publications]
        )

    async def delete(self, outbox_ids: Sequence[str]) -> None:
        await self._cur.execute(_DELETE_AND_RECORD, (self._publications, list(outbox_ids)))
        self._publications = "[]"

    async def mark_failed(self, outbox_ids: Sequence[str], error: str) -> None:
        await self._cur.execute(
            "UPDATE ingestion.outbox SET retry_count = retry_count + 1, last_error = %s "
            "WHERE outbox_id = ANY(%s::uuid[])",
            (error[:1000], list(outbox_ids)),
        )

    async def set_aside(self, rows: Sequence[tuple[str, str]]) -> None:
        reasons = json_text.dumps([{"i": i, "e": why[:1000]} for i, why in rows])
        await self._cur.execute(_SET_ASIDE, (reasons,))
        metrics.RELAY_EVENTS.labels("poisoned").inc(len(rows))


class PostgresRelayStore:
    def __init__(self, pool: DictPool) -> None:
        self._pool = pool

    def claim(self, limit: int) -> AbstractAsyncContextManager[ClaimedBatch]:
        return self._claim(limit)

    @asynccontextmanager
    async def _claim(self, limit: int) -> AsyncIterator[ClaimedBatch]:
        # Pipeline mode: BEGIN travels with the claim and the delete with COMMIT, so a batch
        # costs three round trips (claim, append, delete + commit) instead of five.
        async with (
            translate_errors("relaying the outbox"),
            self._pool.connection() as conn,
            conn.pipeline() as pipeline,
            conn.transaction(),
            conn.cursor() as cur,
        ):
            await cur.execute(_BATCH_TIMEOUT)
            await cur.execute(_CLAIM, {"key": SLOT_LOCK_KEY, "limit": limit})
            raw = await cur.fetchall()
            yield _Batch(cur, pipeline, [_row(r) for r in raw])

    async def outbox_stats(self) -> tuple[int, float]:
        """Rows waiting and the age in seconds of the oldest (0 when empty)."""
        async with translate_errors("reading outbox depth"), self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(created_at)), 0) "
                "AS age FROM ingestion.outbox"
            )
            row = await cur.fetchone()
        return (int(row["n"]), float(row["age"])) if row else (0, 0.0)

    async def purge_idempotency_keys(self, older_than_seconds: float) -> int:
        async with translate_errors("purging idempotency keys"), self._pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM ingestion.idempotency_keys "
                "WHERE created_at < now() - make_interval(secs => %s)",
                (older_than_seconds,),
            )
            return cur.rowcount


async def listen_outbox(url: str, on_notify: Callable[[], None], stop: asyncio.Event) -> None:
    """Wake the relay on every NOTIFY (the watchdog poll covers gaps)."""
    await listen(url, "outbox_insert", on_notify, stop)
