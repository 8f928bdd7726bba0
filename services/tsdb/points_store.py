"""PostgreSQL adapters of the writer: points, rollups and latest values in one transaction
(PointWriter), and the day partitions they live in (made ahead and on demand, dropped by
retention)."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import sql

from services.core.errors import InvalidInput, Unavailable
from services.infra.postgres import TRANSIENT
from services.tsdb.series import (
    HOUR,
    MINUTE,
    Point,
    partition_day,
    partition_name,
    rollup_keys,
    to_drop,
)

log = logging.getLogger(__name__)

# (table, partition name prefix, retention kind)
POINTS = "points"
ROLLUP_TABLES = ("rollup_1m", "rollup_1h")
TABLES = (POINTS, *ROLLUP_TABLES)
# Advisory lock namespaces: partition DDL (one at a time), and devices being written.
_DDL_LOCK = 0x7D5B0001
_DEVICE_LOCK = 0x7D5B0002

_INSERT = """
INSERT INTO tsdb.points (device, metric, time, value, event_id)
SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::float8[], %s::uuid[])
ON CONFLICT DO NOTHING
RETURNING device, metric, time
"""

# Recomputed from the raw points of each touched minute: correct whatever arrived before,
# twice, or late. first/last by event time (event_id breaks ties).
_ROLLUP_1M = """
INSERT INTO tsdb.rollup_1m AS r (device, metric, bucket, count, sum, min, max, first, last)
SELECT k.device, k.metric, k.bucket, count(*), sum(p.value), min(p.value), max(p.value),
       (array_agg(p.value ORDER BY p.time, p.event_id))[1],
       (array_agg(p.value ORDER BY p.time DESC, p.event_id DESC))[1]
FROM unnest(%s::text[], %s::text[], %s::timestamptz[]) AS k(device, metric, bucket)
JOIN tsdb.points p ON p.device = k.device AND p.metric = k.metric
 AND p.time >= k.bucket AND p.time < k.bucket + interval '1 minute'
-- The batch's span as constants: the planner prunes to the partitions it touches.
WHERE p.time >= %s AND p.time < %s
GROUP BY k.device, k.metric, k.bucket
ON CONFLICT (device, metric, bucket) DO UPDATE SET
  count = excluded.count, sum = excluded.sum, min = excluded.min, max = excluded.max,
  first = excluded.first, last = excluded.last
"""

# An hour is its minutes (just recomputed above, in the same transaction).
_ROLLUP_1H = """
INSERT INTO tsdb.rollup_1h AS r (device, metric, bucket, count, sum, min, max, first, last)
SELECT k.device, k.metric, k.bucket, sum(m.count), sum(m.sum), min(m.min), max(m.max),
       (array_agg(m.first ORDER BY m.bucket))[1],
       (array_agg(m.last ORDER BY m.bucket DESC))[1]
FROM unnest(%s::text[], %s::text[], %s::timestamptz[]) AS k(device, metric, bucket)
JOIN tsdb.rollup_1m m ON m.device = k.device AND m.metric = k.metric
 AND m.bucket >= k.bucket AND m.bucket < k.bucket + interval '1 hour'
WHERE m.bucket >= %s AND m.bucket < %s
GROUP BY k.device, k.metric, k.bucket
ON CONFLICT (device, metric, bucket) DO UPDATE SET
  count = excluded.count, sum = excluded.sum, min = excluded.min, max = excluded.max,
  first = excluded.first, last = excluded.last
"""

_LATEST = """
INSERT INTO tsdb.latest AS l (device, metric, time, value, event_id)
SELECT DISTINCT ON (device, metric) device, metric, time, value, event_id
FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::float8[], %s::uuid[])
  AS b(device, metric, time, value, event_id)
ORDER BY device, metric, time DESC, event_id DESC
ON CONFLICT (device, metric) DO UPDATE SET
  time = excluded.time, value = excluded.value, event_id = excluded.event_id
WHERE (excluded.time, excluded.event_id) > (l.time, l.event_id)
"""


def _lock_key(device: str) -> int:
    v = zlib.crc32(device.encode())
    return v - 2**32 if v >= 2**31 else v


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def create_partitions(conn: psycopg.Connection[tuple[object, ...]], days: Iterable[date]) -> int:
    """Make the day partitions of every table for ``days`` (those missing); returns how
    many were made. Serialised by an advisory lock (two writers, or a writer and
    retention, never race on the catalogue)."""
    made = 0
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
        existing = {
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'tsdb'"
            ).fetchall()
        }
        for day in sorted(set(days)):
            start, end = _day_bounds(day)
            for table in TABLES:
                name = partition_name(table, day)
                if name in existing:
                    continue
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE tsdb.{} PARTITION OF tsdb.{} FOR VALUES FROM ({}) TO ({})"
                    ).format(
                        sql.Identifier(name),
                        sql.Identifier(table),
                        sql.Literal(start.isoformat()),
                        sql.Literal(end.isoformat()),
                    )
                )
                made += 1
    return made


def drop_expired(
    conn: psycopg.Connection[tuple[object, ...]],
    now: datetime,
    retention: timedelta,
    rollup_retention: timedelta,
) -> list[str]:
    """Drop whole day partitions past their table's retention (never rows); latest values
    not updated within the rollup retention go too. Returns the partitions dropped."""
    dropped: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
        for table in TABLES:
            names = [
                str(r[0])
                for r in conn.execute(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = %s::regclass",
                    (f"tsdb.{table}",),
                ).fetchall()
            ]
            keep = retention if table == POINTS else rollup_retention
            for name in to_drop(names, table, now, keep):
                conn.execute(
                    sql.SQL("ALTER TABLE tsdb.{} DETACH PARTITION tsdb.{}").format(
                        sql.Identifier(table), sql.Identifier(name)
                    )
                )
                conn.execute(sql.SQL("DROP TABLE tsdb.{}").format(sql.Identifier(name)))
                dropped.append(name)
        conn.execute("DELETE FROM tsdb.latest WHERE time < %s", (now - rollup_retention,))
    return dropped


class PostgresPointWriter:
    """The consumer's PointWriter: one blocking connection, reopened after a failure.
    Not thread-safe (one consumer loop)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._days: set[date] = set()  # partitions known to exist
        self.partitions_made = 0

    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
            self._conn.execute("SET TIME ZONE 'UTC'")
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def write(self, points: Sequence[Point]) -> int:
        if not points:
            return 0
        try:
            return self._write(points)
        except TRANSIENT as e:
            self.close()
            raise Unavailable(f"database unavailable while writing points: {e}") from e
        except psycopg.errors.CheckViolation as e:
            # "no partition of relation found": retention dropped a day we knew of between
            # our check and the insert; forget what we know and let the loop retry (the
            # points of an expired day are filtered out then).
            self._days.clear()
            raise Unavailable(f"a partition went away while writing points: {e}") from e
        except psycopg.errors.DeadlockDetected as e:
            raise Unavailable(f"deadlock while writing points, retrying: {e}") from e
        except psycopg.DataError as e:
            raise InvalidInput(f"points cannot be stored: {e}") from e

    def _write(self, points: Sequence[Point]) -> int:
        conn = self._connection()
        days = {partition_day(p.time) for p in points} - self._days
        if days:
            self.partitions_made += create_partitions(conn, days)
            self._days |= days
        cols = (
            [p.device for p in points],
            [p.metric for p in points],
            [p.time for p in points],
            [p.value for p in points],
            [p.event_id for p in points],
        )
        with conn.transaction():
            # Writers of the same device take turns (a rebalance can hand a partition over
            # mid-batch): each recomputes its rollups after the other's points committed.
            keys = sorted({_lock_key(p.device) for p in points})
            conn.execute(
                "SELECT count(pg_advisory_xact_lock(%s, k)) FROM unnest(%s::int[]) AS k",
                (_DEVICE_LOCK, keys),
            )
            with conn.cursor() as cur:
                cur.execute(_INSERT, cols)
                new = cur.fetchall()
            if new:
                minutes = rollup_keys(((str(d), str(m), t) for d, m, t in new), MINUTE)  # type: ignore[misc]
                starts = [k[2] for k in minutes]
                conn.execute(
                    _ROLLUP_1M,
                    (
                        [k[0] for k in minutes],
                        [k[1] for k in minutes],
                        starts,
                        min(starts),
                        max(starts) + MINUTE,
                    ),
                )
                hours = rollup_keys(((d, m, t) for d, m, t in minutes), HOUR)
                hour_starts = [k[2] for k in hours]
                conn.execute(
                    _ROLLUP_1H,
                    (
                        [k[0] for k in hours],
                        [k[1] for k in hours],
                        hour_starts,
                        min(hour_starts),
                        max(hour_starts) + HOUR,
                    ),
                )
                conn.execute(_LATEST, cols)
        return len(new)
