"""PostgreSQL adapter for the Outbox port (ingestion schema)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from services.core import json_text
from services.infra.postgres import Availability, DictPool, translate_errors
from services.ingestion.ports import Appended, PendingEvent

# Every key of a batch in one statement; a key is the principal's (the caller's subject)
# and the key the caller chose. A key inside the retention window is left alone (and not
# returned); an expired one is taken over. Sorted, so that two transactions claiming
# overlapping keys lock them in the same order and cannot deadlock.
_CLAIM_KEYS = """
INSERT INTO ingestion.idempotency_keys (principal, idempotency_key, event_id, created_at)
SELECT p, k, e, t FROM jsonb_to_recordset(%s::jsonb) AS x(p text, k text, e uuid, t timestamptz)
ORDER BY p, k
ON CONFLICT (principal, idempotency_key) DO UPDATE
    SET event_id = EXCLUDED.event_id, created_at = EXCLUDED.created_at
    WHERE ingestion.idempotency_keys.created_at < %s
RETURNING principal, idempotency_key
"""
_HELD_KEYS = """
SELECT i.principal, i.idempotency_key, i.event_id
FROM ingestion.idempotency_keys i
JOIN jsonb_to_recordset(%s::jsonb) AS x(p text, k text)
    ON i.principal = x.p AND i.idempotency_key = x.k
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
        # A key repeated inside one batch (concurrent retries merged by group commit):
        # its first holder claims it, the others answer as its duplicates.
        first: dict[tuple[str, str], PendingEvent] = {}
        for item in items:
            if item.idempotency_key:
                first.setdefault(item.scoped_key, item)
        claims = json_text.dumps(
            [
                {
                    "p": principal,
                    "k": key,
                    "e": item.event.event_id,
                    "t": item.event.ingested_at.isoformat(),
                }
                for (principal, key), item in first.items()
            ]
        )
        async with (
            translate_errors("writing the outbox"),
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor() as cur,
        ):
            await cur.execute(_CLAIM_KEYS, (claims, retention_since))
            claimed = {(r["principal"], r["idempotency_key"]) for r in await cur.fetchall()}
            held = [key for key in first if key not in claimed]
            earlier: dict[tuple[str, str], str] = {}
            if held:
                # Committed by an earlier transaction (the insert waited for it if needed).
                await cur.execute(
                    _HELD_KEYS, (json_text.dumps([{"p": p, "k": k} for p, k in held]),)
                )
                earlier = {
                    (r["principal"], r["idempotency_key"]): str(r["event_id"])
                    for r in await cur.fetchall()
                }
            results: list[Appended] = []
            fresh: list[PendingEvent] = []
            for item in items:
                key = item.scoped_key
                if not item.idempotency_key or (key in claimed and first[key] is item):
                    results.append(Appended(item.event.event_id, duplicate=False))
                    fresh.append(item)
                elif key in claimed:
                    results.append(Appended(first[key].event.event_id, duplicate=True))
                else:
                    results.append(Appended(earlier[key], duplicate=True))
            if fresh:
                await cur.execute(_INSERT_OUTBOX, (_json_array(fresh),))
        return results


def _json_array(items: Sequence[PendingEvent]) -> str:
    return json_text.dumps([item.event.to_dict() for item in items])
