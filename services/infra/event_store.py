"""Reads ingestion.event_store for tools that replay history (projection rebuilds,
republishing). Uses ingestion's database URL: the event store is ingestion's table."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from services.core.events import Event, Metadata
from services.infra.postgres import utc_options

# Sessions run in UTC (utc_options) whatever the server's or database's time zone, and
# row_to_event converts too.
COLUMNS = "event_id, event_type, aggregate_id, event_time, ingested_at, payload, metadata"
_SELECT = f"SELECT {COLUMNS} FROM ingestion.event_store"


class EventStoreSource:
    """Streams the event store with a server-side cursor (constant memory), optionally only
    events ingested in [since, until)."""

    def __init__(
        self,
        url: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        order: str = "event_time",
    ) -> None:
        if order not in ("event_time", "ingested_at"):
            raise ValueError(f"order must be event_time or ingested_at, got {order!r}")
        self._url = url
        self._order = order
        self._params: list[Any] = []
        parts: list[str] = ["TRUE"]
        if since is not None:
            parts.append("ingested_at >= %s")
            self._params.append(since)
        if until is not None:
            parts.append("ingested_at < %s")
            self._params.append(until)
        self._where = " AND ".join(parts)

    def count(self) -> int:
        with psycopg.connect(self._url, options=utc_options(self._url)) as conn:
            row = conn.execute(
                f"SELECT count(*) FROM ingestion.event_store WHERE {self._where}", self._params
            ).fetchone()
        return int(row[0]) if row else 0

    def batches(self, size: int) -> Iterator[list[Event]]:
        with psycopg.connect(self._url, options=utc_options(self._url)) as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            with conn.cursor(name="cj_event_store", row_factory=dict_row) as cur:
                cur.itersize = size
                cur.execute(
                    f"{_SELECT} WHERE {self._where} ORDER BY {self._order}, event_id",
                    self._params,
                )
                while rows := cur.fetchmany(size):
                    yield [row_to_event(r) for r in rows]


def row_to_event(row: Mapping[str, Any]) -> Event:
    """An ``ingestion.event_store`` row (as selected by COLUMNS) as an Event. Times are
    converted to UTC, as the bus carries them: psycopg returns timestamptz in the session's
    time zone, and a projector that writes a time (user_session's last_login_at) must write
    the same text on a rebuild as the live handler does."""
    meta = row["metadata"] or {}
    return Event(
        event_id=str(row["event_id"]),
        event_type=row["event_type"],
        aggregate_id=row["aggregate_id"],
        event_time=row["event_time"].astimezone(UTC),
        ingested_at=row["ingested_at"].astimezone(UTC),
        payload=row["payload"],
        metadata=Metadata(
            trace_id=meta.get("trace_id", ""),
            source=meta.get("source", "grpc"),
            schema_version=int(meta.get("schema_version", 1)),
            span_id=meta.get("span_id", ""),
            subject=meta.get("subject", ""),
        ),
    )
