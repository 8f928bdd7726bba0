"""The orchestrator's consumer side: events in, jobs out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from services.actions.consumer import JobPlanner
from services.actions.ports import NewJob
from services.actions.rules import CompiledRule, compile_rule
from services.core.clock import Clock
from services.core.events import Event
from services.infra.codec import encode_event

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
E1 = "019b0000-0000-7000-8000-000000000001"
E2 = "019b0000-0000-7000-8000-000000000002"


class FixedClock:
    def now(self) -> datetime:
        return T0


class Sink:
    def __init__(self, rules: list[CompiledRule]) -> None:
        self.rules = rules
        self.jobs: list[NewJob] = []

    def enabled_rules(self) -> list[CompiledRule]:
        return self.rules

    def enqueue(self, jobs: Sequence[NewJob], now: datetime, dedupe_window: float) -> int:
        self.jobs.extend(jobs)
        return len(jobs)


def planner(sink: Sink) -> JobPlanner:
    ids = iter(f"job-{i}" for i in range(100))
    clock: Clock = FixedClock()
    return JobPlanner(sink, clock, lambda: next(ids), dedupe_window=0)


def test_without_enabled_rules_nothing_is_decoded(caplog: pytest.LogCaptureFixture) -> None:
    # Undecodable bytes would be logged if they were decoded: with no rule they are not.
    assert planner(Sink([])).handle([b"\xff not protobuf"]) == 0
    assert "undecodable" not in caplog.text


def test_matching_events_become_jobs_and_bad_bytes_are_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rule = compile_rule("r1", "sensor.*", "", "https://example.test/hook")
    sink = Sink([rule])
    good = Event(E1, "sensor.reading", "dev-1", T0, T0, {"value": 1.0, "unit": "C"})
    other = Event(E2, "user.login", "u-1", T0, T0, {"user_id": "u-1", "ip": "1.2.3.4"})
    created = planner(sink).handle([encode_event(good), b"\xff", encode_event(other)])
    assert created == 1
    assert [(j.rule_id, j.event_id) for j in sink.jobs] == [("r1", E1)]
    assert "undecodable" in caplog.text
