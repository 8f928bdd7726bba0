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
from services.infra.postgres import TRANSIENT, connect_bounded
from services.tsdb.ports import PartitionGone
from services.tsdb.series import Point, partition_day, partition_name, to_drop

log = logging.getLogger(__name__)

# (table, partition name prefix, retention kind)
POINTS = "points"
ROLLUP_TABLES = ("rollup_1m", "rollup_1h")
TABLES = (POINTS, *ROLLUP_TABLES)
# Advisory lock namespaces: partition DDL (one at a time), and devices being written.
_DDL_LOCK = 0x7D5B0001
_DEVICE_LOCK = 0x7D5B0002

# One statement, one round trip: the points (binary arrays, %b: text ones cost the writer
# 15 us of CPU per point to format, binary 4.6), then the rollups and latest values folded with
# exactly the points that were new. A re-delivered point is not RETURNed by the insert, so
# it changes no aggregate; a late one merges into its bucket (first/last compare event
# time, then event_id). Writers of one device take turns (the advisory lock in _write), so
# no two merges of a bucket interleave.
_ROLLUP = """
{name} AS (
  INSERT INTO tsdb.{table} AS r (device, metric, bucket, count, sum, min, max,
                                 first, first_time, first_id, last, last_time, last_id)
  SELECT device, metric, date_bin(interval '{step}', time, 'epoch'::timestamptz), count(*),
         sum(value::numeric), min(value), max(value),
         (array_agg(value ORDER BY time, event_id))[1], min(time),
         (array_agg(event_id ORDER BY time, event_id))[1],
         (array_agg(value ORDER BY time DESC, event_id DESC))[1], max(time),
         (array_agg(event_id ORDER BY time DESC, event_id DESC))[1]
  FROM new GROUP BY 1, 2, 3
  ON CONFLICT (device, metric, bucket) DO UPDATE SET
    count = r.count + excluded.count, sum = r.sum + excluded.sum,
    min = least(r.min, excluded.min), max = greatest(r.max, excluded.max),
    first = CASE WHEN (excluded.first_time, excluded.first_id) < (r.first_time, r.first_id)
                 THEN excluded.first ELSE r.first END,
    first_time = least(r.first_time, excluded.first_time),
    first_id = CASE WHEN (excluded.first_time, excluded.first_id) < (r.first_time, r.first_id)
                    THEN excluded.first_id ELSE r.first_id END,
    last = CASE WHEN (excluded.last_time, excluded.last_id) > (r.last_time, r.last_id)
                THEN excluded.last ELSE r.last END,
    last_time = greatest(r.last_time, excluded.last_time),
    last_id = CASE WHEN (excluded.last_time, excluded.last_id) > (r.last_time, r.last_id)
                   THEN excluded.last_id ELSE r.last_id END
  RETURNING 1
)"""

_WRITE = (
    """
WITH new AS (
  INSERT INTO tsdb.points (device, metric, time, value, event_id)
  SELECT * FROM unnest(%b::text[], %b::text[], %b::timestamptz[], %b::float8[], %b::uuid[])
  ON CONFLICT DO NOTHING
  RETURNING device, metric, time, value, event_id
),"""
    + _ROLLUP.format(name="m", table="rollup_1m", step="1 minute")
    + ","
    + _ROLLUP.format(name="h", table="rollup_1h", step="1 hour")
    + """,
l AS (
  INSERT INTO tsdb.latest AS l (device, metric, time, value, event_id)
  SELECT DISTINCT ON (device, metric) device, metric, time, value, event_id
  FROM new ORDER BY device, metric, time DESC, event_id DESC
  ON CONFLICT (device, metric) DO UPDATE SET
    time = excluded.time, value = excluded.value, event_id = excluded.event_id
  WHERE (excluded.time, excluded.event_id) > (l.time, l.event_id)
  RETURNING 1
)
SELECT (SELECT count(*) FROM new), (SELECT count(*) FROM m), (SELECT count(*) FROM h),
       (SELECT count(*) FROM l)
"""
)


def _lock_key(device: str) -> int:
    v = zlib.crc32(device.encode())
    return v - 2**32 if v >= 2**31 else v


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def create_partitions(
    conn: psycopg.Connection[tuple[object, ...]], days: Iterable[date], lock_timeout: float = 1.0
) -> int:
    """Make the day partitions of every table for ``days`` (those missing); returns how
    many were made. Each is made as a table of its own and then ATTACHed, which takes only
    SHARE UPDATE EXCLUSIVE on the parent (CREATE TABLE .. PARTITION OF takes ACCESS
    EXCLUSIVE: one open reader would stall it and everyone queued behind it). Lock waits
    are bounded by ``lock_timeout`` (LockNotAvailable, transient: retried). Serialised by
    an advisory lock (two writers, or a writer and retention, never race on the
    catalogue)."""
    made = 0
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(_millis(lock_timeout)))
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
        existing = {
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'tsdb' AND c.relispartition"
            ).fetchall()
        }
        for day in sorted(set(days)):
            start, end = _day_bounds(day)
            for table in TABLES:
                name = partition_name(table, day)
                if name in existing:
                    continue
                # A table left by an attach that failed half way is made again.
                conn.execute(sql.SQL("DROP TABLE IF EXISTS tsdb.{}").format(sql.Identifier(name)))
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE tsdb.{} (LIKE tsdb.{} INCLUDING DEFAULTS INCLUDING "
                        "CONSTRAINTS INCLUDING GENERATED)"
                    ).format(sql.Identifier(name), sql.Identifier(table))
                )
                conn.execute(
                    sql.SQL(
                        "ALTER TABLE tsdb.{} ATTACH PARTITION tsdb.{} FOR VALUES FROM ({}) TO ({})"
                    ).format(
                        sql.Identifier(table),
                        sql.Identifier(name),
                        sql.Literal(start.isoformat()),
                        sql.Literal(end.isoformat()),
                    )
                )
                made += 1
    return made


def _millis(seconds: float) -> sql.Literal:
    return sql.Literal(f"{max(1, int(seconds * 1000))}ms")


def drop_expired(
    conn: psycopg.Connection[tuple[object, ...]],
    now: datetime,
    retention: timedelta,
    rollup_retention: timedelta,
    lock_timeout: float = 1.0,
) -> list[str]:
    """Drop whole day partitions past their table's retention (never rows); latest values
    not updated within the rollup retention go too. Returns the partitions dropped.

    ``conn`` must be in autocommit: each partition is DETACHed CONCURRENTLY (SHARE UPDATE
    EXCLUSIVE on the parent; it waits for the readers that may see it, never blocks them)
    and then dropped. A lock wait longer than ``lock_timeout`` raises LockNotAvailable
    (transient): the upkeep logs it and tries again next round, which finishes a detach
    left pending (FINALIZE) and drops tables detached but not yet dropped."""
    conn.execute(sql.SQL("SET lock_timeout = {}").format(_millis(lock_timeout)))
    dropped: list[str] = []
    conn.execute("SELECT pg_advisory_lock(%s)", (_DDL_LOCK,))
    try:
        rows = conn.execute(
            "SELECT c.relname, c.relispartition, coalesce(i.inhdetachpending, false) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_inherits i ON i.inhrelid = c.oid "
            "WHERE n.nspname = 'tsdb' AND c.relkind = 'r'"
        ).fetchall()
        state = {str(r[0]): (bool(r[1]), bool(r[2])) for r in rows}
        for table in TABLES:
            keep = retention if table == POINTS else rollup_retention
            for name in to_drop(state, table, now, keep):
                attached, pending = state[name]
                if attached:
                    conn.execute(
                        sql.SQL("ALTER TABLE tsdb.{} DETACH PARTITION tsdb.{} {}").format(
                            sql.Identifier(table),
                            sql.Identifier(name),
                            sql.SQL("FINALIZE" if pending else "CONCURRENTLY"),
                        )
                    )
                conn.execute(sql.SQL("DROP TABLE tsdb.{}").format(sql.Identifier(name)))
                dropped.append(name)
        conn.execute("DELETE FROM tsdb.latest WHERE time < %s", (now - rollup_retention,))
    finally:
        if not conn.broken:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_DDL_LOCK,))
    return dropped


class PostgresPointWriter:
    """The consumer's PointWriter: one blocking connection, reopened after a failure.
    Not thread-safe (one consumer loop)."""

    def __init__(
        self, url: str, lock_timeout: float = 1.0, statement_timeout: float = 30.0
    ) -> None:
        self._url = url
        self._lock_timeout = lock_timeout
        self._statement_timeout = statement_timeout
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._days: set[date] = set()  # partitions known to exist
        self.partitions_made = 0

    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = connect_bounded(
                self._url,
                lock_timeout=self._lock_timeout,
                statement_timeout=self._statement_timeout,
            )
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
            if e.diag.constraint_name is None:
                # "no partition of relation found for row" (it names no constraint): retention
                # dropped a day we knew of between our check and the insert. Forget what we
                # know; the caller drops the points that expired and retries once.
                self._days.clear()
                raise PartitionGone(f"a partition went away while writing points: {e}") from e
            raise InvalidInput(f"points cannot be stored: {e}") from e
        except psycopg.errors.DeadlockDetected as e:
            raise Unavailable(f"deadlock while writing points, retrying: {e}") from e
        except psycopg.DataError as e:
            raise InvalidInput(f"points cannot be stored: {e}") from e

    def _write(self, points: Sequence[Point]) -> int:
        conn = self._connection()
        days = {partition_day(p.time) for p in points} - self._days
        if days:
            self.partitions_made += create_partitions(conn, days, self._lock_timeout)
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
            # mid-batch): each merges into rollups the other has committed.
            keys = sorted({_lock_key(p.device) for p in points})
            conn.execute(
                "SELECT count(pg_advisory_xact_lock(%s, k)) FROM unnest(%s::int[]) AS k",
                (_DEVICE_LOCK, keys),
            )
            row = conn.execute(_WRITE, cols).fetchone()
        return int(row[0]) if row else 0  # type: ignore[call-overload]
