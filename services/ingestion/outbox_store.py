"""PostgreSQL adapter for the Outbox port (ingestion schema)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

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
# One statement and one JSON parameter for the whole batch: PostgreSQL unpacks it in C,
# which is far cheaper than adapting a parameter per row in Python.
_INSERT_OUTBOX = """
INSERT INTO ingestion.outbox (outbox_id, created_at, event_payload)
SELECT (e->>'event_id')::uuid, (e->>'ingested_at')::timestamptz, e
FROM jsonb_array_elements(%s::jsonb) AS e
"""


class PostgresOutbox:
    def __init__(self, pool: DictPool, availability: Availability | None = None) -> None:
        self._pool = pool
        self._availability = availability or Availability()

    async def append(
        self, items: Sequence[PendingEvent], *, retention_since: datetime
    ) -> list[Appended]:
        self._availability.check("writing the outbox")
        if not any(item.idempotency_key for item in items):
            # The common case: one autocommitted statement is atomic, so no BEGIN/COMMIT
            # round trips are needed.
            async with translate_errors("writing the outbox"), self._pool.connection() as conn:
                await conn.execute(_INSERT_OUTBOX, (_json_array(items),))
            return [Appended(item.event.event_id, duplicate=False) for item in items]
        return await self._append_with_keys(items, retention_since)

    async def _append_with_keys(
        self, items: Sequence[PendingEvent], retention_since: datetime
    ) -> list[Appended]:
        results: list[Appended] = []
        fresh: list[PendingEvent] = []
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
                fresh.append(item)
            if fresh:
                await cur.execute(_INSERT_OUTBOX, (_json_array(fresh),))
        return results


def _json_array(items: Sequence[PendingEvent]) -> str:
    return json.dumps([item.event.to_dict() for item in items], separators=(",", ":"))
