"""PostgreSQL adapter for the handler's ProjectionStore (eventhandler schema)."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime

import psycopg

from services.core import json_text
from services.core.errors import InvalidInput, Unavailable
from services.eventhandler.projectors import ProjectionUpdate
from services.eventhandler.service import DeadLetter

log = logging.getLogger(__name__)

# Newer-wins: the row only moves forward by (last_event_timestamp, last_event_id).
# One statement per batch (the batch holds at most one update per row: newest_per_key).
_UPSERT_INTO = """
INSERT INTO {table} AS p
    (projection_type, aggregate_id, state, last_event_id, last_event_timestamp, updated_at)
SELECT t, a, s, e, ts, %s
FROM jsonb_to_recordset(%s::jsonb) AS u(t text, a text, s jsonb, e uuid, ts timestamptz)
ON CONFLICT (projection_type, aggregate_id) DO UPDATE SET
    state = EXCLUDED.state,
    last_event_id = EXCLUDED.last_event_id,
    last_event_timestamp = EXCLUDED.last_event_timestamp,
    updated_at = EXCLUDED.updated_at
WHERE (p.last_event_timestamp, p.last_event_id)
    < (EXCLUDED.last_event_timestamp, EXCLUDED.last_event_id)
"""
UPSERT = _UPSERT_INTO.format(table="eventhandler.projections")
# The same fold into the table `cornjacket replay` builds aside.
UPSERT_ASIDE = _UPSERT_INTO.format(table="eventhandler.projections_rebuild")
# One row per (consumer, poison event) (migration 004): a redelivery of a pending letter is
# another failed attempt (retry_count + 1, the latest error; failed_at stays the first
# failure); a replayed or discarded letter stays as the operator left it. A letter without
# an event id (undecodable) is keyed by the SHA-256 of its bytes.
_DEAD = """
INSERT INTO eventhandler.dlq AS d (consumer, event_id, event_payload, error_message, failed_at)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT {key} DO UPDATE SET
    retry_count = d.retry_count + 1,
    error_message = EXCLUDED.error_message
WHERE d.status = 'pending'
"""
_DEAD_BY_EVENT = _DEAD.format(key="(consumer, event_id)")
_DEAD_BY_BYTES = _DEAD.format(key="(consumer, sha256(event_payload)) WHERE event_id IS NULL")


_ERROR_CHARS = 2000


def storable_text(text: str, limit: int = _ERROR_CHARS) -> str:
    """Text PostgreSQL accepts: a NUL (which no text column can hold) written as ``\\x00``,
    cut to ``limit`` characters."""
    return text.replace("\x00", "\\x00")[:limit]


def db_message(e: psycopg.Error) -> str:
    """The database's message and detail, without the CONTEXT lines that quote the batch."""
    primary, detail = e.diag.message_primary, e.diag.message_detail
    if not primary:  # raised by the driver, e.g. a NUL in a text parameter
        return str(e)
    return f"{primary} ({detail})" if detail else primary


def dead_letter_row(consumer: str, d: DeadLetter, now: datetime) -> tuple[object, ...]:
    """The dlq row's values, all storable: the raw bytes go to bytea as they are; an event id
    PostgreSQL could not read is stored in its canonical form, or (not a UUID at all) as
    NULL and named in the error instead."""
    event_id: str | None = None
    error = d.error
    if d.event_id:
        try:
            event_id = str(uuid.UUID(d.event_id))
        except ValueError:
            error = f"event_id {d.event_id[:80]!r} is not a UUID; {error}"
    return (consumer, event_id, d.raw, storable_text(error), now)


def upsert_batch(updates: Sequence[ProjectionUpdate]) -> str:
    """UPSERT's one JSON parameter: PostgreSQL unpacks it in C."""
    return json_text.dumps(
        [
            {
                "t": u.projection_type,
                "a": u.aggregate_id,
                "s": u.state,
                "e": u.event_id,
                "ts": u.event_time.isoformat(),
            }
            for u in updates
        ]
    )


class PostgresProjectionStore:
    """Holds one connection, reopened after a failure. Not thread-safe (one consumer loop)."""

    def __init__(self, url: str, consumer: str) -> None:
        self._url = url
        self._consumer = consumer
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            # Autocommit: a batch without dead letters is one statement, atomic on its own,
            # so it needs no BEGIN/COMMIT round trips; dead letters open a transaction.
            self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
        return self._conn

    def apply(
        self, updates: Sequence[ProjectionUpdate], dead: Sequence[DeadLetter], now: datetime
    ) -> int:
        batch = upsert_batch(updates)
        try:
            conn = self._connection()
            if not dead:
                if updates:
                    conn.execute(UPSERT, (now, batch))
                return len(updates)
            with conn.transaction(), conn.cursor() as cur:
                if updates:
                    cur.execute(UPSERT, (now, batch))
                for d in dead:
                    log.error(
                        "event sent to the DLQ",
                        extra={"event_id": d.event_id or "", "error": d.error},
                    )
                    row = dead_letter_row(self._consumer, d, now)
                    cur.execute(_DEAD_BY_EVENT if row[1] else _DEAD_BY_BYTES, row)
            return len(updates)
        except psycopg.OperationalError as e:
            self.close()
            raise Unavailable(f"database unavailable while writing projections: {e}") from e
        except psycopg.DataError as e:
            # A value the database refuses (a NUL in a string, an id it cannot read): the
            # same batch would fail forever; nothing was written (one statement or one
            # transaction), so the caller can isolate the event that carries it.
            raise InvalidInput(f"a value cannot be stored: {db_message(e)}") from e

    def ping(self) -> bool:
        try:
            self._connection().execute("SELECT 1")
            return True
        except psycopg.Error:
            self.close()
            return False

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
