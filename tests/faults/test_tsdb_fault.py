"""The TSDB writer SIGKILLed under steady load (a row of the fault table): when the stack is
back, every acknowledged reading is one point (none lost) and the minute and hour rollups
equal a recomputation from the points; "duplicated" is the points the rollups count beyond
the stored points (a redelivered batch folded in twice), which the kill can make non-zero."""

from __future__ import annotations

import time
from typing import Any

import pytest

from services.cli.stack import Stack
from tests.faults import test_faults as base
from tests.faults.helpers import await_outbox_drained, count
from tests.faults.test_faults import SteadyLoad, Supervised, await_recovery
from tests.faults.test_replicas import metric
from tests.support import bearer, eventually, unique
from tests.tsdb_checks import rollup_mismatches, rollup_surplus

pytestmark = pytest.mark.faults

# The fault suite's module fixtures: a stack (and supervisor) of this module's own.
stack = base.stack
supervised = base.supervised


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
    # Doubled: points the rollups count beyond the stored points (a batch redelivered after
    # the kill and folded in twice). The points' primary key makes a count of points alone
    # unable to show it.
    doubled = rollup_surplus(url, f"{run}-%")
    mismatches = rollup_mismatches(url, f"{run}-%")
    # Points of readings whose request was not acknowledged (the load's own effect; counted
    # as the other rows of the table count them, not asserted).
    unacked = count(
        url,
        "SELECT count(*) FROM tsdb.points WHERE device LIKE %s AND NOT event_id = ANY(%s::uuid[])",
        (f"{run}-%", acked),
    )
    # How many points the restarted writer was handed again (its duplicate counter starts
    # at zero): whether this run's kill fell between a write and its commit.
    port = int(stack.service_env()["CJ_TSDB_METRICS_PORT"])
    redelivered = int(metric(port, "cornjacket_tsdb_points_total", 'outcome="duplicate"'))
    report.append(
        {
            "fault": "SIGKILL tsdb writer",
            "acked": len(acked),
            "lost": missing(),
            "unacked_stored": unacked,
            "duplicated": doubled,
            "recovery_s": recovery,
            "note": f"{redelivered} points redelivered to the restarted writer; 'stored twice' "
            "is the points the rollups count beyond the stored points",
        }
    )
    assert doubled == 0
    assert mismatches == {"tsdb.rollup_1m": 0, "tsdb.rollup_1h": 0}, "rollups differ from points"
