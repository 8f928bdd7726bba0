"""TestRule (issue 19): a sample event against a rule, through the consumer's own matcher."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from services.actions import rules as r
from services.actions.consumer import JobPlanner
from services.actions.ports import DeliveryStore, NewJob, RuleStore
from services.actions.service import (
    MAX_SAMPLE_PAYLOAD_BYTES,
    ActionService,
    RuleTest,
    SampleEvent,
)
from services.core.errors import InvalidInput, NotFound
from services.core.events import Event, Metadata
from services.infra.codec import encode_event

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
RULE_ID = "019b0000-0000-7000-8000-0000000000aa"


class FixedClock:
    def now(self) -> datetime:
        return T0


class OneRule:
    """The RuleStore's read side, holding one (disabled) rule."""

    def __init__(self) -> None:
        self.rule = r.Rule(
            rule_id=RULE_ID,
            name="hot",
            event_type_pattern="sensor.*",
            condition='payload.value > 80 and metadata.source == "mqtt"',
            target=r.Target("https://example.com/hook"),
            enabled=False,
            disabled_reason="disabled by the API",
            created_at=T0,
            updated_at=T0,
        )

    async def get(self, rule_id: str) -> r.Rule | None:
        return self.rule if rule_id == RULE_ID else None


def service() -> ActionService:
    ids = iter(f"019b0000-0000-7000-8000-{i:012d}" for i in range(1000))
    return ActionService(
        cast(RuleStore, OneRule()),
        cast(DeliveryStore, object()),
        FixedClock(),
        lambda: next(ids),
    )


def sample(payload: dict[str, Any], source: str = "mqtt", event_type: str = "sensor.reading"):  # type: ignore[no-untyped-def]
    return SampleEvent(event_type, "dev-1", payload, Metadata(source=source, trace_id="t-1"))


def run(rule_id: str, pattern: str, condition: str, ev: SampleEvent) -> RuleTest:
    return asyncio.run(service().evaluate_rule(rule_id, pattern, condition, ev))


class Sink:
    def __init__(self, rule: r.CompiledRule) -> None:
        self.rules = [rule]
        self.jobs: list[NewJob] = []

    def enabled_rules(self) -> list[r.CompiledRule]:
        return self.rules

    def enqueue(self, jobs: Sequence[NewJob], now: datetime, dedupe_window: float) -> int:
        self.jobs.extend(jobs)
        return len(jobs)


@pytest.mark.parametrize(
    ("pattern", "condition", "ev"),
    [
        ("sensor.*", "payload.value > 80", sample({"value": 85})),
        ("sensor.*", "payload.value > 80", sample({"value": 70})),
        ("sensor.*", "payload.value > 80", sample({"value": "85"})),
        ("sensor.reading", "", sample({})),
        ("user.*", "", sample({})),
        ("*", 'metadata.trace_id == "t-1" and aggregate_id == "dev-1"', sample({})),
        ("*", 'metadata.source == "http"', sample({}, source="mqtt")),
        ("*", "payload.a.b == true", sample({"a": {"b": True}})),
        ("*", "not payload.missing", sample({})),
    ],
)
def test_the_answer_is_what_the_consumer_would_do(
    pattern: str, condition: str, ev: SampleEvent
) -> None:
    result = run("", pattern, condition, ev)
    # The same event, encoded as on the bus, through the orchestrator's planner.
    sink = Sink(r.compile_rule(RULE_ID, pattern, condition, "https://example.com/hook"))
    event = Event(
        "019b0000-0000-7000-8000-00000000e001",
        ev.event_type,
        ev.aggregate_id,
        T0,
        T0,
        ev.payload,
        ev.metadata,
    )
    JobPlanner(sink, FixedClock(), lambda: "job", dedupe_window=0).handle([encode_event(event)])
    assert result.matched is bool(sink.jobs)
    assert result.matched is (result.pattern_matched and result.condition_matched)


def test_matched_and_unmatched_parts_are_told_apart() -> None:
    hot = run("", "user.*", "payload.value > 80", sample({"value": 85}))
    assert (hot.matched, hot.pattern_matched, hot.condition_matched) == (False, False, True)
    cold = run("", " sensor.* ", " payload.value > 80 ", sample({"value": 7}))
    assert (cold.matched, cold.pattern_matched, cold.condition_matched) == (False, True, False)
    assert (cold.event_type_pattern, cold.condition) == ("sensor.*", "payload.value > 80")


def test_a_bad_condition_gets_create_rules_positioned_error() -> None:
    bad = "payload.value >> 80"
    with pytest.raises(InvalidInput) as created:
        r.validate_condition(bad)
    with pytest.raises(InvalidInput) as tested:
        run("", "sensor.*", bad, sample({}))
    assert str(tested.value) == str(created.value)
    assert "at position 16" in str(tested.value)


def test_an_existing_rule_is_tested_even_when_disabled() -> None:
    assert run(RULE_ID, "", "", sample({"value": 81})).matched
    assert not run(RULE_ID, "", "", sample({"value": 81}, source="http")).matched
    assert run(RULE_ID, "", "", sample({"value": 81})).condition == OneRule().rule.condition


@pytest.mark.parametrize(
    ("rule_id", "pattern", "condition", "ev", "error", "message"),
    [
        (RULE_ID, "sensor.*", "", sample({}), InvalidInput, "either rule_id or"),
        ("", "", "", sample({}), InvalidInput, "event_type_pattern is required"),
        ("not-a-uuid", "", "", sample({}), InvalidInput, "is not a UUID"),
        ("019b0000-0000-7000-8000-0000000000bb", "", "", sample({}), NotFound, "no rule"),
        ("", "*", "", sample({}, event_type=""), InvalidInput, "event.event_type is required"),
        ("", "*", "", sample({}, source="carrier-pigeon"), InvalidInput, "is not one of"),
        (
            "",
            "*",
            "",
            sample({"blob": "x" * MAX_SAMPLE_PAYLOAD_BYTES}),
            InvalidInput,
            f"a sample may hold at most {MAX_SAMPLE_PAYLOAD_BYTES}",
        ),
        ("", "*", "", SampleEvent("a.b", "x" * 257, {}), InvalidInput, "aggregate_id is longer"),
    ],
)
def test_bad_requests_are_refused_clearly(
    rule_id: str,
    pattern: str,
    condition: str,
    ev: SampleEvent,
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        run(rule_id, pattern, condition, ev)


def test_the_edge_gives_it_the_rule_routes_scope_and_budget() -> None:
    from services.cli.envoy_config import ROUTE_SCOPES, ROUTES

    path = "/cornjacket.v1.ActionService/TestRule"
    routes = [(cluster, budget) for prefix, cluster, _, budget in ROUTES if path.startswith(prefix)]
    assert routes == [("actions", "admin")]
    scopes = [
        s for s, prefixes in ROUTE_SCOPES.items() if any(path.startswith(p) for p in prefixes)
    ]
    assert scopes == ["admin"]
