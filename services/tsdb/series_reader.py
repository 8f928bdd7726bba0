"""PostgreSQL adapter of SeriesReader: buckets from raw points and rollups, latest values,
the list of series."""

from __future__ import annotations

import functools
import sys
from datetime import timedelta
from decimal import Decimal
from typing import Any

from services.infra.postgres import DictPool, translate_errors
from services.tsdb.ports import Buckets, Latest, Series
from services.tsdb.series import EPOCH, HOUR, MINUTE, Plan, SeriesQuery, floor_time, prefix_end

# Sums are numeric (rollup sums are, so huge finite values never overflow) and answered as
# float8: a sum beyond float8's range reads as +-Infinity, never an error. The rollups keep
# that float8 beside the exact sum (sum_float, migration tsdb/004: PostgreSQL casts numeric
# to float8 through text, ~0.5 ms per 1,440 rows); sums of several rows or raw points are
# turned into it here (_FLOAT8).
# The answer is one row of columns (cheap to turn into the answer), buckets in time order;
# a bucket's index is float8 arithmetic on the bucket's epoch (extract() is numeric: ~0.4 ms
# per 1,440 buckets).
_INDEX = "array_agg(((date_part('epoch', b) - %(origin_s)s) / %(step)s)::int ORDER BY b) AS i"
_FLOAT8 = (
    "CASE WHEN {0} > %(dbl_max)s THEN 'Infinity'::float8 "
    "WHEN {0} < -%(dbl_max)s THEN '-Infinity'::float8 ELSE {0}::float8 END"
)
# The answer's other columns, each built only when an aggregate asked for needs it (a 24 h
# answer of one column is a quarter of the bytes of all seven to build and to transcode).
# The average is the float8 sum over the count, as the service computed it before: one
# column from the database instead of two.
_COLUMN_SQL = {
    "n": "array_agg(n ORDER BY b) AS n",
    "s": "array_agg(s ORDER BY b) AS s",
    "a": "array_agg(s / n ORDER BY b) AS a",
    "lo": "array_agg(lo ORDER BY b) AS lo",
    "hi": "array_agg(hi ORDER BY b) AS hi",
    "f": "array_agg(f ORDER BY b) AS f",
    "l": "array_agg(l ORDER BY b) AS l",
}
# The columns each aggregate needs.
NEEDS = {
    "count": ("n",),
    "sum": ("s",),
    "min": ("lo",),
    "max": ("hi",),
    "avg": ("a",),
    "first": ("f",),
    "last": ("l",),
}


def columns_for(aggregates: frozenset[str]) -> tuple[str, ...]:
    """The columns (in _COLUMN_SQL's order) the aggregates need."""
    needed = {c for a in aggregates for c in NEEDS[a]}
    return tuple(c for c in _COLUMN_SQL if c in needed)


def _columns(cols: tuple[str, ...]) -> str:
    return "SELECT " + ",\n       ".join([_INDEX, *(_COLUMN_SQL[c] for c in cols)]) + "\nFROM g\n"


# The raw points at the unaligned edges and the rollup rows of the aligned middle, each a
# partial aggregate starting at t (disjoint in time), folded into the answer's buckets.
_GROUPED = (
    """
WITH src AS (
  SELECT time AS t, event_id::text AS k, 1::bigint AS n, value::numeric AS s, value AS lo,
         value AS hi,
         value AS f, value AS l
  FROM tsdb.points
  WHERE device = %(device)s AND metric = %(metric)s
    AND ((time >= %(start)s AND time < %(rfrom)s) OR (time >= %(rto)s AND time < %(end)s))
  UNION ALL
  SELECT bucket, '', count, sum, min, max, first, last
  FROM {rollup}
  WHERE device = %(device)s AND metric = %(metric)s
    AND bucket >= %(rfrom)s AND bucket < %(rto)s
)
, g AS (
  SELECT date_bin(%(bucket)s, t, %(epoch)s) AS b, sum(n)::bigint AS n,
         """
    + _FLOAT8.format("sum(s)")
    + """ AS s,
         min(lo) AS lo, max(hi) AS hi,
         (array_agg(f ORDER BY t, k))[1] AS f, (array_agg(l ORDER BY t DESC, k DESC))[1] AS l
  FROM src GROUP BY b
)
"""
)
# The bucket is the rollup's step (1m from rollup_1m, 1h from rollup_1h): every rollup row
# is a bucket of the answer as it is, and the raw edges are buckets of their own (the edge
# [start, rollup_from) lies in the bucket before rollup_from, [rollup_to, end) in the one at
# rollup_to). Grouping 1,440 rollup rows again (two ordered aggregates per bucket for first
# and last) was ~3 ms of the database's CPU per 24 h read.
_AS_STORED = (
    """
WITH edge AS (
  SELECT date_bin(%(bucket)s, time, %(epoch)s) AS b, count(*) AS n, sum(value::numeric) AS s,
         min(value) AS lo, max(value) AS hi,
         (array_agg(value ORDER BY time, event_id))[1] AS f,
         (array_agg(value ORDER BY time DESC, event_id DESC))[1] AS l
  FROM tsdb.points
  WHERE device = %(device)s AND metric = %(metric)s
    AND ((time >= %(start)s AND time < %(rfrom)s) OR (time >= %(rto)s AND time < %(end)s))
  GROUP BY 1
)
, g AS (
  SELECT b, n, """
    + _FLOAT8.format("s")
    + """ AS s, lo, hi, f, l FROM edge
  UNION ALL
  SELECT bucket, count, sum_float, min, max, first, last
  FROM {rollup}
  WHERE device = %(device)s AND metric = %(metric)s
    AND bucket >= %(rfrom)s AND bucket < %(rto)s
)
"""
)
_DBL_MAX = Decimal(repr(sys.float_info.max))
_ROLLUP_TABLES = {HOUR: "tsdb.rollup_1h", MINUTE: "tsdb.rollup_1m"}
# (rollup step or None, bucket == step) -> the statement's WITH part
_QUERIES = {
    (step, as_stored): (_AS_STORED if as_stored else _GROUPED).format(
        rollup=_ROLLUP_TABLES.get(step, "tsdb.rollup_1m") if step else "tsdb.rollup_1m"
    )
    for step in (HOUR, MINUTE, None)
    for as_stored in (False, True)
}


@functools.cache
def _statement(step: timedelta | None, as_stored: bool, cols: tuple[str, ...]) -> str:
    return _QUERIES[step, as_stored] + _columns(cols)


LATEST_SQL = (
    "SELECT metric, time, value FROM tsdb.latest WHERE device = %s ORDER BY metric LIMIT %s"
)


def buckets_statement(q: SeriesQuery, plan: Plan) -> tuple[str, dict[str, Any]]:
    """The statement answering ``q`` and its parameters."""
    as_stored = plan.rollup is not None and plan.rollup == q.bucket
    origin = (floor_time(q.start, q.bucket) - EPOCH).total_seconds()
    return _statement(plan.rollup, as_stored, columns_for(q.aggregates)), {
        "device": q.device,
        "metric": q.metric,
        "start": q.start,
        "end": q.end,
        "rfrom": plan.rollup_from,
        "rto": plan.rollup_to,
        "bucket": q.bucket,
        "epoch": EPOCH,
        "origin_s": origin,
        "step": q.bucket.total_seconds(),
        "dbl_max": _DBL_MAX,
    }


_SERIES = (
    "SELECT device, metric, time FROM tsdb.latest WHERE (device, metric) > (%s, %s){upper} "
    "ORDER BY device, metric LIMIT %s"
)
_SERIES_IN_PREFIX = _SERIES.format(upper=" AND device < %s")
_SERIES_ALL = _SERIES.format(upper="")


def series_statement(
    device_prefix: str, after: tuple[str, str], limit: int
) -> tuple[str, tuple[object, ...]]:
    """The statement listing series after ``after`` whose device starts with the prefix: the
    prefix's range of the primary key, [prefix, prefix_end), both bounds parameters so a
    prepared statement's generic plan seeks it too (the columns' collation is "C", the
    order of ``prefix_end``; migration tsdb/003)."""
    lower = max(after, (device_prefix, ""))  # metrics are never "": nothing equals it
    upper = prefix_end(device_prefix) if device_prefix else None
    if upper is None:
        return _SERIES_ALL, (*lower, limit)
    return _SERIES_IN_PREFIX, (*lower, upper, limit)


class PostgresSeriesReader:
    def __init__(self, pool: DictPool) -> None:
        self._pool = pool

    async def buckets(self, q: SeriesQuery, plan: Plan) -> Buckets:
        sql, params = buckets_statement(q, plan)
        origin = floor_time(q.start, q.bucket)
        async with translate_errors("reading a series"), self._pool.connection() as conn:
            # Binary results: 7 arrays of up to 10,000 numbers parse much faster than text.
            cur = await conn.execute(sql, params, binary=True)
            row: dict[str, Any] | None = await cur.fetchone()
        if row is None or row["i"] is None:
            return Buckets(origin, q.bucket)
        return Buckets(
            origin,
            q.bucket,
            row["i"],
            row.get("n") or [],
            row.get("s") or [],
            row.get("lo") or [],
            row.get("hi") or [],
            row.get("f") or [],
            row.get("l") or [],
            row.get("a") or [],
        )

    async def latest(self, device: str, limit: int) -> list[Latest]:
        async with translate_errors("reading latest values"), self._pool.connection() as conn:
            cur = await conn.execute(LATEST_SQL, (device, limit))
            return [Latest(r["metric"], r["time"], r["value"]) for r in await cur.fetchall()]

    async def series(self, device_prefix: str, after: tuple[str, str], limit: int) -> list[Series]:
        async with translate_errors("listing series"), self._pool.connection() as conn:
            cur = await conn.execute(*series_statement(device_prefix, after, limit))
            return [Series(r["device"], r["metric"], r["time"]) for r in await cur.fetchall()]
