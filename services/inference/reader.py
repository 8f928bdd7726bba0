"""PostgreSQL reads behind InferenceService (scores, anomalies, model status) and the model
reset. Thread-safe: a small pool of its own, for the synchronous gRPC server's threads."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from services.core import json_text
from services.core.errors import InvalidInput, Unavailable

MAX_PAGE = 1000
DEFAULT_PAGE = 100
FAR_PAST = datetime(1, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)
NIL = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True, slots=True)
class Window:
    since: datetime
    until: datetime
    limit: int
    after: tuple[datetime, str, str] | None  # keyset: (event_time, event id, metric)


def window(since: datetime | None, until: datetime | None, page_size: int, token: str) -> Window:
    if page_size < 0 or page_size > MAX_PAGE:
        raise InvalidInput(f"page_size must be between 1 and {MAX_PAGE}, got {page_size}")
    since, until = since or FAR_PAST, until or FAR_FUTURE
    if since > until:
        raise InvalidInput("from is after to")
    return Window(since, until, page_size or DEFAULT_PAGE, _untoken(token) if token else None)


def token_of(row: dict[str, Any], id_key: str) -> str:
    text = json_text.dumps([row["event_time"].isoformat(), str(row[id_key]), row["metric"]])
    return base64.urlsafe_b64encode(text.encode()).decode()


def _untoken(token: str) -> tuple[datetime, str, str]:
    try:
        t, e, k = json_text.loads(base64.urlsafe_b64decode(token.encode()))
        return datetime.fromisoformat(t), str(e), str(k)
    except (ValueError, TypeError, binascii.Error):
        raise InvalidInput("page_token is not one this API gave") from None


def check_device(device: str) -> None:
    if not device:
        raise InvalidInput("device is required")
    if len(device) > 256 or any(ord(c) < 32 or ord(c) == 127 for c in device):
        raise InvalidInput("device must be at most 256 characters without control characters")


class InferenceReader:
    def __init__(self, url: str, *, max_size: int = 4) -> None:
        self._pool: ConnectionPool[psycopg.Connection[DictRow]] = ConnectionPool(
            url,
            connection_class=psycopg.Connection[DictRow],
            min_size=1,
            max_size=max_size,
            kwargs={
                "row_factory": dict_row,
                "autocommit": True,
                "connect_timeout": 5,
                "options": "-c TimeZone=UTC",
            },
            name="inference-reader",
            open=False,
            timeout=5,
        )

    def open(self) -> None:
        self._pool.open(wait=False)

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def _conn(self, what: str) -> Iterator[psycopg.Connection[DictRow]]:
        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as e:
            raise Unavailable(f"database unavailable while {what}: {e}") from e
        except psycopg.DataError as e:
            raise InvalidInput(f"{what}: a value cannot be used: {e}") from e

    def scores(self, device: str, metric: str, w: Window) -> list[dict[str, Any]]:
        after = w.after or (FAR_PAST, NIL, "")
        with self._conn("reading scores") as conn:
            return conn.execute(
                "SELECT event_id::text, device, metric, event_time, value, score, low, high, "
                "learned, anomaly FROM inference.scores WHERE device = %s "
                "AND (%s = '' OR metric = %s) AND event_time >= %s AND event_time < %s "
                "AND (NOT %s OR (event_time, event_id, metric) > (%s, %s::uuid, %s)) "
                "ORDER BY event_time, event_id, metric LIMIT %s",
                (
                    device,
                    metric,
                    metric,
                    w.since,
                    w.until,
                    w.after is not None,
                    *after,
                    w.limit + 1,
                ),
            ).fetchall()

    def anomalies(self, device: str, w: Window) -> list[dict[str, Any]]:
        after = w.after or (FAR_FUTURE, NIL, "")
        with self._conn("reading anomalies") as conn:
            return conn.execute(
                "SELECT source_event_id::text, anomaly_event_id::text, device, metric, "
                "event_time, payload FROM inference.anomalies "
                "WHERE (%s = '' OR device = %s) AND event_time >= %s AND event_time < %s "
                "AND (NOT %s OR (event_time, source_event_id, metric) < (%s, %s::uuid, %s)) "
                "ORDER BY event_time DESC, source_event_id DESC, metric DESC LIMIT %s",
                (device, device, w.since, w.until, w.after is not None, *after, w.limit + 1),
            ).fetchall()

    def caused_by(self, event_id: str) -> list[dict[str, Any]]:
        with self._conn("reading an event's anomalies") as conn:
            return conn.execute(
                "SELECT source_event_id::text, anomaly_event_id::text, device, metric, "
                "event_time, payload FROM inference.anomalies WHERE source_event_id = %s "
                "ORDER BY metric",
                (event_id,),
            ).fetchall()

    def models(self, device: str) -> list[dict[str, Any]]:
        with self._conn("reading models") as conn:
            return conn.execute(
                "SELECT metric, model, observations, late, last_score, last_event_time "
                "FROM inference.models WHERE device = %s AND state IS NOT NULL ORDER BY metric",
                (device,),
            ).fetchall()

    def reset(self, device: str, metric: str) -> int:
        """Forget the models: clear their state and bump their generation (not a delete), so
        a batch in flight that loaded them before cannot write them back (store.py)."""
        with self._conn("resetting models") as conn:
            cur = conn.execute(
                "UPDATE inference.models SET generation = generation + 1, state = NULL, "
                "observations = 0, late = 0, last_event_time = NULL, last_event_id = NULL, "
                "last_score = NULL, updated_at = now() "
                "WHERE device = %s AND (%s = '' OR metric = %s) AND state IS NOT NULL",
                (device, metric, metric),
            )
            return cur.rowcount
