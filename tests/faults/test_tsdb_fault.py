"""The TSDB writer SIGKILLed under steady load (a row of the fault table): when the stack is
back, every acknowledged reading is one point (none lost, none doubled) and the minute and
hour rollups equal a recomputation from the points."""

from __future__ import annotations

import time
from typing import Any

import pytest

from services.cli.stack import Stack
from tests.faults import test_faults as base
from tests.faults.helpers import await_outbox_drained, count
from tests.faults.test_faults import SteadyLoad, Supervised, await_recovery
from tests.support import bearer, eventually, unique

pytestmark = pytest.mark.faults

# The fault suite's module fixtures: a stack (and supervisor) of this module's own.
stack = base.stack
supervised = base.supervised

# Rollup rows of the run's devices that differ from the same aggregates computed from the
# raw points (either side missing counts too).
_ROLLUP_DIFF = """
WITH want AS (
  SELECT device, metric, date_bin(%(step)s::interval, time, 'epoch'::timestamptz) AS bucket,
         count(*) AS count, sum(value) AS sum, min(value) AS min, max(value) AS max,
         (array_agg(value ORDER BY time, event_id))[1] AS first,
         (array_agg(value ORDER BY time DESC, event_id DESC))[1] AS last
  FROM tsdb.points WHERE device LIKE %(run)s GROUP BY 1, 2, 3
), got AS (
  SELECT device, metric, bucket, count, sum, min, max, first, last
  FROM {table} WHERE device LIKE %(run)s
)
SELECT count(*) FROM want FULL JOIN got USING (device, metric, bucket)
WHERE want.count IS DISTINCT FROM got.count OR abs(want.sum - got.sum) > 1e-6
   OR want.min IS DISTINCT FROM got.min OR want.max IS DISTINCT FROM got.max
   OR want.first IS DISTINCT FROM got.first OR want.last IS DISTINCT FROM got.last
"""


def test_fault_sigkill_tsdb_writer(
    stack: Stack, supervised: Supervised, report: list[dict[str, Any]]
) -> None:
    assert "tsdb" in stack.services, "the fault stack runs the TSDB (CJ_FEATURE_TSDB)"
    run = unique("ft")
    load = SteadyLoad(stack.edge_url, run, headers=bearer(stack))
    load.start()
    url = stack.postgres.url
    try:
        eventually(lambda: len(load.acked) >= 150, timeout=30, what="load running")
        # Killed while it is writing: points of the run are arriving.
        eventually(
            lambda: (
                count(url, "SELECT count(*) FROM tsdb.points WHERE device LIKE %s", (f"{run}-%",))
                > 50
            ),
            timeout=30,
            what="the writer writing",
        )
        injected = time.monotonic()
        stack.services["tsdb"].kill()
        recovery = (
            await_recovery(stack, supervised, load, injected, "recovery from SIGKILL tsdb")
            - injected
        )
    finally:
        load.halt.set()
        load.join(timeout=30)
    await_outbox_drained(stack)
    acked = load.acked
    stored = count(
        url, "SELECT count(*) FROM ingestion.event_store WHERE event_id = ANY(%s::uuid[])", (acked,)
    )
    assert stored == len(set(acked)) == len(acked)

    def missing() -> int:
        # Events of the run in the event store without their point (value is the one metric).
        return count(
            url,
            "SELECT count(*) FROM ingestion.event_store e WHERE e.aggregate_id LIKE %s "
            "AND NOT EXISTS (SELECT 1 FROM tsdb.points p WHERE p.event_id = e.event_id "
            "AND p.device = e.aggregate_id AND p.metric = 'value' "
            "AND p.value = (e.payload->>'value')::float8 AND p.time = e.event_time)",
            (f"{run}-%",),
        )

    eventually(lambda: missing() == 0, timeout=90, interval=0.5, what="every reading a point")
    in_store = count(
        url, "SELECT count(*) FROM ingestion.event_store WHERE aggregate_id LIKE %s", (f"{run}-%",)
    )
    points = count(url, "SELECT count(*) FROM tsdb.points WHERE device LIKE %s", (f"{run}-%",))
    doubled = points - in_store
    for table, step in (("tsdb.rollup_1m", "1 minute"), ("tsdb.rollup_1h", "1 hour")):
        diff = count(url, _ROLLUP_DIFF.format(table=table), {"run": f"{run}-%", "step": step})  # type: ignore[arg-type]
        assert diff == 0, f"{diff} rows of {table} differ from a recomputation"
    report.append(
        {
            "fault": "SIGKILL tsdb writer",
            "acked": len(acked),
            "lost": missing(),
            "unacked_stored": 0,
            "duplicated": doubled,
            "recovery_s": recovery,
        }
    )
    assert doubled == 0
