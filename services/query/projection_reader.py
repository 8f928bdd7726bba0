"""PostgreSQL adapter for ProjectionReader: reads the event handler's projections."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.infra.postgres import DictPool, translate_errors, translate_missing_table
from services.query.service import ProjectionView, Views

_COLUMNS = (
    "projection_id, projection_type, aggregate_id, state, last_event_id, "
    "last_event_timestamp, updated_at"
)


def _view(row: dict[str, Any]) -> ProjectionView:
    return ProjectionView(
        projection_id=str(row["projection_id"]),
        projection_type=row["projection_type"],
        aggregate_id=row["aggregate_id"],
        state=row["state"],
        last_event_id=str(row["last_event_id"]),
        last_event_timestamp=row["last_event_timestamp"],
        updated_at=row["updated_at"],
    )


class PostgresProjectionReader:
    def __init__(self, pool: DictPool) -> None:
        self._pool = pool

    async def get(self, projection_type: str, aggregate_id: str) -> ProjectionView | None:
        async with (
            translate_errors("reading a projection"),
            translate_missing_table("reading a projection"),
            self._pool.connection() as conn,
        ):
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM eventhandler.projections "
                "WHERE projection_type = %s AND aggregate_id = %s",
                (projection_type, aggregate_id),
            )
            row = await cur.fetchone()
            return _view(row) if row else None

    async def list(
        self, projection_type: str, limit: int, offset: int
    ) -> tuple[list[ProjectionView], int]:
        async with (
            translate_errors("listing projections"),
            translate_missing_table("listing projections"),
            self._pool.connection() as conn,
        ):
            # One snapshot for the page and the total, so they agree.
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                cur = await conn.execute(
                    "SELECT count(*) AS n FROM eventhandler.projections WHERE projection_type = %s",
                    (projection_type,),
                )
                total_row = await cur.fetchone()
                cur = await conn.execute(
                    f"SELECT {_COLUMNS} FROM eventhandler.projections WHERE projection_type = %s "
                    "ORDER BY aggregate_id LIMIT %s OFFSET %s",
                    (projection_type, limit, offset),
                )
                rows = await cur.fetchall()
            return [_view(r) for r in rows], int(total_row["n"]) if total_row else 0

    async def get_many(self, projection_type: str, aggregate_ids: Sequence[str]) -> Views:
        if not aggregate_ids:
            return []
        async with (
            translate_errors("reading projections"),
            translate_missing_table("reading projections"),
            self._pool.connection() as conn,
        ):
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM eventhandler.projections "
                "WHERE projection_type = %s AND aggregate_id = ANY(%s)",
                (projection_type, list(aggregate_ids)),
            )
            return [_view(r) for r in await cur.fetchall()]

    async def list_after(self, projection_type: str, after: str, limit: int) -> Views:
        async with (
            translate_errors("listing projections"),
            translate_missing_table("listing projections"),
            self._pool.connection() as conn,
        ):
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM eventhandler.projections "
                "WHERE projection_type = %s AND aggregate_id > %s "
                "ORDER BY aggregate_id LIMIT %s",
                (projection_type, after, limit),
            )
            return [_view(r) for r in await cur.fetchall()]
