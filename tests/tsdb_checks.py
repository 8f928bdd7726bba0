"""Checks of the TSDB's rollups against the raw points, shared by the component and fault
tests: a redelivered batch that was folded into a rollup twice shows up here (the points'
primary key hides it from any count of points)."""

from __future__ import annotations

import psycopg

_STEPS = (("tsdb.rollup_1m", "1 minute"), ("tsdb.rollup_1h", "1 hour"))

# Rollup rows of the devices LIKE %(devices)s that differ from the same aggregates computed
# from the raw points (a row missing on either side counts too).
_DIFF = """
WITH want AS (
  SELECT device, metric, date_bin(%(step)s::interval, time, 'epoch'::timestamptz) AS bucket,
         count(*) AS count, sum(value::numeric) AS sum, min(value) AS min, max(value) AS max,
         (array_agg(value ORDER BY time, event_id))[1] AS first,
         (array_agg(value ORDER BY time DESC, event_id DESC))[1] AS last
  FROM tsdb.points WHERE device LIKE %(devices)s GROUP BY 1, 2, 3
), got AS (
  SELECT device, metric, bucket, count, sum, min, max, first, last
  FROM {table} WHERE device LIKE %(devices)s
)
SELECT count(*) FROM want FULL JOIN got USING (device, metric, bucket)
WHERE want.count IS DISTINCT FROM got.count OR abs(want.sum - got.sum) > 1e-6
   OR want.min IS DISTINCT FROM got.min OR want.max IS DISTINCT FROM got.max
   OR want.first IS DISTINCT FROM got.first OR want.last IS DISTINCT FROM got.last
"""

# Points the rollups count beyond the raw points (a point folded in twice counts once).
_SURPLUS = """
WITH want AS (
  SELECT device, metric, date_bin(%(step)s::interval, time, 'epoch'::timestamptz) AS bucket,
         count(*) AS count
  FROM tsdb.points WHERE device LIKE %(devices)s GROUP BY 1, 2, 3
)
SELECT coalesce(sum(greatest(r.count - coalesce(want.count, 0), 0)), 0)
FROM {table} r LEFT JOIN want USING (device, metric, bucket) WHERE r.device LIKE %(devices)s
"""


def _scalar(url: str, query: str, devices: str, step: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query, {"devices": devices, "step": step}).fetchone()
    return int(row[0]) if row else 0


def rollup_mismatches(url: str, devices: str) -> dict[str, int]:
    """Per rollup table, how many rows differ from a recomputation from the points."""
    return {t: _scalar(url, _DIFF.format(table=t), devices, s) for t, s in _STEPS}


def rollup_surplus(url: str, devices: str) -> int:
    """Points counted by the rollups beyond the stored points, over both rollup tables:
    what a doubled fold-in of a redelivered batch adds (0 when every point counts once)."""
    return sum(_scalar(url, _SURPLUS.format(table=t), devices, s) for t, s in _STEPS)
