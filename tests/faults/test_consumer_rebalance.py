"""Fault: two event handlers in one consumer group, PostgreSQL down, one handler SIGKILLed
during the outage, PostgreSQL back.

The survivor is blocked on its batch when the group hands it the dead handler's partitions;
what it polls from them while blocked must not be skipped. Every acknowledged event gets its
own aggregate, so each must end up with a projection of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.cli.processes import free_port
from services.cli.stack import Stack
from services.config.settings import Env, EventHandlerSettings
from tests.faults.helpers import await_outbox_drained, count
from tests.faults.test_faults import (  # noqa: F401 (stack, supervised: the fault stack's fixtures)
    SteadyLoad,
    Supervised,
    await_recovery,
    stack,
    supervised,
)
from tests.support import bearer, eventually, service_process, unique

pytestmark = pytest.mark.faults

BLOCKED = "database unavailable; blocking without committing"
ASSIGNED = "partitions assigned"
# How long PostgreSQL stays down once the survivor holds every partition: the polls it makes
# meanwhile are where a skipped message would be lost (part of the fault, not a wait).
OUTAGE_AFTER_REBALANCE = 8.0


def records(path: Path, msg: str) -> list[dict[str, Any]]:
    """The JSON log records of one process whose message is ``msg``."""
    found = []
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and rec.get("msg") == msg:
            found.append(rec)
    return found


def grows(path: Path, msg: str, since: int, test: Callable[[dict[str, Any]], bool] = bool) -> bool:
    return any(test(r) for r in records(path, msg)[since:])


def test_fault_rebalance_while_postgres_is_down(
    stack: Stack,  # noqa: F811
    supervised: Supervised,  # noqa: F811
    report: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    settings = EventHandlerSettings.from_env(Env(stack.service_env()))
    every_partition = len(settings.topics) * settings.common.topic_partitions
    port = free_port()
    env = {
        **stack.service_env(),
        "CJ_EVENTHANDLER_PORT": str(port),
        "CJ_EVENTHANDLER_METRICS_PORT": "0",
    }
    first_log = stack.logs / "eventhandler.log"
    second_log = tmp_path / "eventhandler.log"
    run = unique("r")
    # One aggregate per event: a projection per acknowledged event.
    load = SteadyLoad(stack.edge_url, run, aggregates=10**9, headers=bearer(stack))
    with service_process("eventhandler", env, tmp_path, f"127.0.0.1:{port}") as second:
        first = stack.services["eventhandler"]
        load.start()
        try:
            eventually(lambda: len(load.acked) >= 150, timeout=30, what="load running")
            # Freeze both handlers until a backlog for each of them is on the bus, so both
            # hold a batch when the database goes down.
            handlers = [first.pid, second.pid]
            blocked_at = [len(records(first_log, BLOCKED)), len(records(second_log, BLOCKED))]
            for pid in handlers:
                assert pid is not None
                os.kill(pid, signal.SIGSTOP)
            try:
                since = len(load.acked)
                url = stack.postgres.url
                eventually(
                    lambda: (
                        count(
                            url,
                            "SELECT count(*) FROM ingestion.event_publications "
                            "WHERE event_id = ANY(%s::uuid[])",
                            (load.acked[since:],),
                        )
                        >= 60
                    ),
                    timeout=30,
                    what="a backlog on the bus",
                )
                injected = time.monotonic()
                stack.postgres.stop()
            finally:
                for pid in handlers:
                    assert pid is not None
                    os.kill(pid, signal.SIGCONT)
            eventually(
                lambda: (
                    grows(first_log, BLOCKED, blocked_at[0])
                    and grows(second_log, BLOCKED, blocked_at[1])
                ),
                timeout=30,
                what="both handlers blocked on a batch",
            )
            assigned_at = len(records(first_log, ASSIGNED))
            second.kill()
            eventually(
                lambda: grows(
                    first_log,
                    ASSIGNED,
                    assigned_at,
                    lambda r: len(r.get("partitions", ())) == every_partition,
                ),
                timeout=60,
                what="the survivor assigned every partition",
            )
            time.sleep(OUTAGE_AFTER_REBALANCE)
            stack.postgres.start(timeout=60)
            restarted = time.monotonic()
            recovery = await_recovery(stack, supervised, load, restarted, "recovery") - injected
        finally:
            load.halt.set()
            load.join(timeout=30)
    url = stack.postgres.url
    await_outbox_drained(stack)
    acked = load.acked

    def applied() -> int:
        return count(
            url,
            "SELECT count(*) FROM eventhandler.projections "
            "WHERE projection_type = 'sensor_state' AND last_event_id = ANY(%s::uuid[])",
            (acked,),
        )

    with contextlib.suppress(AssertionError):  # what is missing then is counted as lost
        eventually(lambda: applied() == len(acked), timeout=90, interval=0.5, what="projections")
    lost = len(acked) - applied()
    stored = count(
        url, "SELECT count(*) FROM ingestion.event_store WHERE event_id = ANY(%s::uuid[])", (acked,)
    )
    in_store = count(
        url, "SELECT count(*) FROM ingestion.event_store WHERE aggregate_id LIKE %s", (f"{run}-%",)
    )
    twice = count(
        url,
        "SELECT count(*) - count(DISTINCT payload->>'value') FROM ingestion.event_store "
        "WHERE aggregate_id LIKE %s",
        (f"{run}-%",),
    )
    report.append(
        {
            "fault": "PostgreSQL down, 2nd event handler SIGKILLed (rebalance)",
            "acked": len(acked),
            "lost": lost,
            "unacked_stored": in_store - stored,
            "duplicated": twice,
            "recovery_s": recovery,
        }
    )
    assert lost == 0, f"{lost} acknowledged events never applied"
    assert stored == len(set(acked)) == len(acked)
    assert twice == 0
