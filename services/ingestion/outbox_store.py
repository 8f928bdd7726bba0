"""PostgreSQL adapter for the Outbox port (ingestion schema)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from psycopg.types.json import Jsonb

from services.infra.postgres import Availability, DictPool, translate_errors
from services.ingestion.ports import Appended, PendingEvent

_CLAIM_KEY = """
INSERT INTO ingestion.idempotency_keys (idempotency_key, event_id, created_at)
VALUES (%s, %s, %s)
ON CONFLICT (idempotency_key) DO UPDATE
    SET event_id = EXCLUDED.event_id, created_at = EXCLUDED.created_at
    WHERE ingestion.idempotency_keys.created_at < %s
RETURNING event_id
"""
# One statement for the whole batch: far cheaper than a statement per row.
_INSERT_OUTBOX = """
INSERT INTO ingestion.outbox (outbox_id, created_at, event_payload)
SELECT * FROM unnest(%s::uuid[], %s::timestamptz[], %s::jsonb[])
"""


class PostgresOutbox:
    def __init__(self, pool: DictPool, availability: Availability | None = None) -> None:
        self._pool = pool
        self._availability = availability or Availability()

    async def append(
        self, items: Sequence[PendingEvent], *, retention_since: datetime
    ) -> list[Appended]:
        self._availability.check("writing the outbox")
        results: list[Appended] = []
        ids: list[str] = []
        times: list[datetime] = []
        bodies: list[Jsonb] = []
        async with (
            translate_errors("writing the outbox"),
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor() as cur,
        ):
            for item in items:
                ev = item.event
                if item.idempotency_key:
                    # Concurrent holders of one key serialise on its unique index: the
                    # loser sees the winner's committed row and answers its event_id.
                    await cur.execute(
                        _CLAIM_KEY,
                        (item.idempotency_key, ev.event_id, ev.ingested_at, retention_since),
                    )
                    if await cur.fetchone() is None:
                        await cur.execute(
                            "SELECT event_id FROM ingestion.idempotency_keys "
                            "WHERE idempotency_key = %s",
                            (item.idempotency_key,),
                        )
                        row = await cur.fetchone()
                        assert row is not None
                        results.append(Appended(str(row["event_id"]), duplicate=True))
                        continue
                results.append(Appended(ev.event_id, duplicate=False))
                ids.append(ev.event_id)
                times.append(ev.ingested_at)
                bodies.append(Jsonb(ev.to_dict()))
            if ids:
                await cur.execute(_INSERT_OUTBOX, (ids, times, bodies))
        return results
