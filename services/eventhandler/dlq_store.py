"""PostgreSQL adapter for the DeadLetterStore port (eventhandler.dlq) and the EffectsStore
port (lineage reads of projections and dead letters): the handler's API-side reads."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from services.core.errors import InvalidInput, Unavailable
from services.eventhandler.dead_letters import DeadLetterFilter, DeadLetterRecord
from services.eventhandler.effects import DeadLetterRef, ProjectionRow
from services.eventhandler.projection_store import (
    UPSERT,
    db_message,
    storable_text,
    upsert_batch,
)
from services.eventhandler.projectors import ProjectionUpdate

_COLUMNS = (
    "dlq_id::text, consumer, coalesce(event_id::text, '') AS event_id, event_payload, "
    "error_message, failed_at, retry_count, status"
)


def _where(flt: DeadLetterFilter) -> tuple[str, list[Any]]:
    parts: list[str] = ["TRUE"]
    params: list[Any] = []
    if flt.consumer:
        parts.append("consumer = %s")
        params.append(flt.consumer)
    if flt.status:
        parts.append("status = %s")
        params.append(flt.status)
    if flt.failed_since:
        parts.append("failed_at >= %s")
        params.append(flt.failed_since)
    if flt.failed_until:
        parts.append("failed_at <= %s")
        params.append(flt.failed_until)
    return " AND ".join(parts), params


def _record(row: dict[str, Any]) -> DeadLetterRecord:
    return DeadLetterRecord(
        dlq_id=row["dlq_id"],
        consumer=row["consumer"],
        event_id=row["event_id"],
        raw=bytes(row["event_payload"]),
        error_message=row["error_message"],
        failed_at=row["failed_at"],
        retry_count=row["retry_count"],
        status=row["status"],
    )


class PostgresDeadLetterStore:
    def __init__(self, url: str, *, max_size: int = 2) -> None:
        self._pool: ConnectionPool[psycopg.Connection[DictRow]] = ConnectionPool(
            url,
            connection_class=psycopg.Connection[DictRow],
            min_size=1,
            max_size=max_size,
            kwargs={"row_factory": dict_row, "autocommit": True},
            name="dlq",
            open=False,
            timeout=5,
        )

    def open(self) -> None:
        self._pool.open(wait=False)

    def close(self) -> None:
        self._pool.close()

    @contextlib.contextmanager
    def _conn(self, what: str) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as e:
            raise Unavailable(f"database unavailable while {what}: {e}") from e
        except psycopg.DataError as e:
            raise InvalidInput(f"{what}: a value cannot be used: {db_message(e)}") from e

    def page(
        self, flt: DeadLetterFilter, limit: int, offset: int
    ) -> tuple[list[DeadLetterRecord], int]:
        where, params = _where(flt)
        with self._conn("listing dead letters") as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM eventhandler.dlq WHERE {where} "
                "ORDER BY failed_at DESC, dlq_id DESC LIMIT %s OFFSET %s",
                [*params, limit, offset],
            ).fetchall()
            total = conn.execute(
                f"SELECT count(*) AS n FROM eventhandler.dlq WHERE {where}", params
            ).fetchone()
        return [_record(r) for r in rows], int(total["n"]) if total else 0

    def get(self, dlq_id: str) -> DeadLetterRecord | None:
        with self._conn("reading a dead letter") as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM eventhandler.dlq WHERE dlq_id = %s", (dlq_id,)
            ).fetchone()
        return _record(row) if row else None

    def pending(
        self, ids: Sequence[str], flt: DeadLetterFilter | None, limit: int
    ) -> list[DeadLetterRecord]:
        """Named ids: every one of them that is pending (``limit`` is not applied: a cut
        would report pending letters as missing); otherwise up to ``limit`` by filter."""
        with self._conn("reading dead letters") as conn:
            if ids:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM eventhandler.dlq "
                    "WHERE dlq_id = ANY(%s::uuid[]) AND status = 'pending'",
                    (list(ids),),
                ).fetchall()
            else:
                where, params = _where(flt or DeadLetterFilter())
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM eventhandler.dlq WHERE {where} "
                    "AND status = 'pending' ORDER BY failed_at, dlq_id LIMIT %s",
                    [*params, limit],
                ).fetchall()
        return [_record(r) for r in rows]

    def mark_replayed(
        self, dlq_id: str, updates: Sequence[ProjectionUpdate], now: datetime
    ) -> bool:
        with self._conn("replaying a dead letter") as conn, conn.transaction():
            claimed = conn.execute(
                "UPDATE eventhandler.dlq SET status = 'replayed' "
                "WHERE dlq_id = %s AND status = 'pending' RETURNING dlq_id",
                (dlq_id,),
            ).fetchone()
            if claimed is None:
                return False
            if updates:
                conn.execute(UPSERT, (now, upsert_batch(updates)))
        return True

    def mark_failed(self, dlq_id: str, error: str) -> None:
        with self._conn("recording a failed replay") as conn:
            conn.execute(
                "UPDATE eventhandler.dlq SET retry_count = retry_count + 1, "
                "error_message = %s WHERE dlq_id = %s AND status = 'pending'",
                (storable_text(error), dlq_id),
            )

    def discard(self, ids: Sequence[str]) -> list[str]:
        with self._conn("discarding dead letters") as conn:
            rows = conn.execute(
                "UPDATE eventhandler.dlq SET status = 'discarded' "
                "WHERE dlq_id = ANY(%s::uuid[]) AND status = 'pending' RETURNING dlq_id::text",
                (list(ids),),
            ).fetchall()
        return [r["dlq_id"] for r in rows]

    def rows(self, keys: Sequence[tuple[str, str]]) -> list[ProjectionRow]:
        if not keys:
            return []
        with self._conn("reading projections") as conn:
            found = conn.execute(
                "SELECT p.projection_type, p.aggregate_id, p.last_event_id::text AS last_event_id, "
                "p.last_event_timestamp, p.updated_at FROM eventhandler.projections p "
                "JOIN unnest(%s::text[], %s::text[]) AS k(t, a) "
                "ON p.projection_type = k.t AND p.aggregate_id = k.a",
                ([k[0] for k in keys], [k[1] for k in keys]),
            ).fetchall()
        return [ProjectionRow(**r) for r in found]

    def dead_letters(self, event_id: str) -> list[DeadLetterRef]:
        with self._conn("reading dead letters") as conn:
            found = conn.execute(
                "SELECT dlq_id::text AS dlq_id, consumer, status, error_message, failed_at "
                "FROM eventhandler.dlq WHERE event_id = %s ORDER BY failed_at",
                (event_id,),
            ).fetchall()
        return [DeadLetterRef(**r) for r in found]
