"""Helpers the fault tests share: the fault stack's settings and the checks after a fault."""

from __future__ import annotations

from typing import Any

import psycopg

from services.cli.stack import Stack
from tests.support import cornjacket, eventually

# The fault stacks' settings: quick polls, and every matching event one webhook.
FAULT_ENV = {
    "CJ_LOG_FORMAT": "json",
    "CJ_EVENTHANDLER_POLL_TIMEOUT": "100ms",
    "CJ_OUTBOX_POLL_INTERVAL": "1s",
    # Every matching event is one webhook: no rate limit, no dedupe window.
    "CJ_ACTIONS_RATE_LIMIT_PER_MINUTE": "0",
    "CJ_ACTIONS_DEDUPE_WINDOW": "0",
    "CJ_ACTIONS_POLL_INTERVAL": "200ms",
    "CJ_ACTIONS_POLL_TIMEOUT": "100ms",
    # The local webhook receiver: an intended internal target (allow-listed).
    "CJ_ACTIONS_ALLOWED_TARGETS": "127.0.0.1",
}


def projections_match_event_store(stack: Stack) -> bool:
    done = cornjacket("replay", "--check", env=stack.service_env(), timeout=120)
    return done.returncode == 0


def count(url: str, sql: str, params: tuple[Any, ...] = ()) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(sql, params).fetchone()
    return int(row[0]) if row else 0


def await_outbox_drained(stack: Stack) -> None:
    eventually(
        lambda: count(stack.postgres.url, "SELECT count(*) FROM ingestion.outbox") == 0,
        timeout=60,
        what="outbox drained",
    )
