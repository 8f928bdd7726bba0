"""Action orchestrator core: rule management, delivery queries, DLQ operations, and
matching events to rules. No transport, driver or HTTP code here."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from services.actions import rules as r
from services.actions.ports import (
    STATUSES,
    BreakerView,
    Delivery,
    DeliveryFilter,
    DeliveryStore,
    NewJob,
    RuleChanges,
    RuleStore,
)
from services.core.clock import Clock
from services.core.errors import InvalidInput, NotFound
from services.core.events import SOURCES, Event, Metadata

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_REPLAY_IDS = 1000
# A sample event for EvaluateRule/TestRule: its payload as JSON, and its text fields.
MAX_SAMPLE_PAYLOAD_BYTES = 64 * 1024
MAX_SAMPLE_FIELD_LEN = 256


class AddressGuard(Protocol):
    """Refuses targets that resolve into forbidden address ranges. Safe for concurrent use."""

    async def check(self, url: str) -> None:
        """Raise InvalidInput naming the address if ``url``'s host is forbidden."""
        ...


@dataclass(frozen=True, slots=True)
class SavedRule:
    rule: r.Rule
    # Set only when the service generated the secret: the one time it is shown.
    generated_secret: str = ""


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


def _paging(limit: int | None, offset: int) -> tuple[int, int]:
    limit = DEFAULT_LIMIT if limit is None else limit
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    if offset < 0:
        raise InvalidInput(f"offset must be 0 or more, got {offset}")
    return limit, offset


@dataclass(frozen=True, slots=True)
class SampleEvent:
    """The parts of an event a rule reads; the rest of the envelope is made up."""

    event_type: str
    aggregate_id: str
    payload: dict[str, object]
    metadata: Metadata = field(default_factory=Metadata)


@dataclass(frozen=True, slots=True)
class RuleTest:
    matched: bool
    pattern_matched: bool
    condition_matched: bool
    event_type_pattern: str
    condition: str


def _check_sample(sample: SampleEvent) -> None:
    if not sample.event_type:
        raise InvalidInput("event.event_type is required")
    texts = {
        "event.event_type": sample.event_type,
        "event.aggregate_id": sample.aggregate_id,
        "event.metadata.trace_id": sample.metadata.trace_id,
        "event.metadata.span_id": sample.metadata.span_id,
    }
    for name, value in texts.items():
        if len(value) > MAX_SAMPLE_FIELD_LEN:
            raise InvalidInput(f"{name} is longer than {MAX_SAMPLE_FIELD_LEN} characters")
    if sample.metadata.source not in SOURCES:
        raise InvalidInput(
            f"event.metadata.source {sample.metadata.source[:40]!r} is not one of "
            + ", ".join(sorted(SOURCES))
        )
    size = len(json.dumps(sample.payload, separators=(",", ":")).encode())
    if size > MAX_SAMPLE_PAYLOAD_BYTES:
        raise InvalidInput(
            f"event.payload is {size} bytes as JSON; a sample may hold at most "
            f"{MAX_SAMPLE_PAYLOAD_BYTES}"
        )


def evaluate(pattern: str, condition: str, event: Event) -> RuleTest:
    """``pattern`` and ``condition`` (validated) against ``event``, through ``match_events``:
    the consumer's own matcher, so a test can never disagree with a delivery."""
    compiled = r.compile_rule("", pattern, condition, "")
    matched = bool(match_events([compiled], [event], lambda: ""))
    return RuleTest(
        matched=matched,
        pattern_matched=r.pattern_matches(pattern, event.event_type),
        condition_matched=compiled.condition.matches(event.to_dict()),
        event_type_pattern=pattern,
        condition=compiled.condition.source,
    )


class ActionService:
    def __init__(
        self,
        rules: RuleStore,
        deliveries: DeliveryStore,
        clock: Clock,
        new_id: Callable[[], str],
        *,
        guard: AddressGuard | None = None,
        allow: r.AllowList = r.NO_ALLOW_LIST,
    ) -> None:
        self._allow = allow
        self._rules = rules
        self._deliveries = deliveries
        self._clock = clock
        self._new_id = new_id
        self._guard = guard

    @property
    def block_private(self) -> bool:
        return self._guard is not None

    @staticmethod
    def _check_id(what: str, value: str) -> None:
        if not value:
            raise InvalidInput(f"{what} is required")
        if len(value) != 36 or value.count("-") != 4:
            raise InvalidInput(f"{what} {value[:80]!r} is not a UUID")
        try:
            int(value.replace("-", ""), 16)
        except ValueError:
            raise InvalidInput(f"{what} {value[:80]!r} is not a UUID") from None

    async def _check_target(self, url: str) -> None:
        if self._guard is not None:
            await self._guard.check(url)

    async def create_rule(self, draft: r.RuleDraft) -> SavedRule:
        draft = r.validate_draft(draft, block_private=self.block_private, allow=self._allow)
        await self._check_target(draft.target.url)
        generated = ""
        if not draft.target.secrets:
            generated = r.generate_secret()
            draft = dataclasses.replace(
                draft, target=dataclasses.replace(draft.target, secrets=(generated,))
            )
        rule = await self._rules.create(self._new_id(), draft, self._clock.now())
        return SavedRule(rule, generated)

    async def get_rule(self, rule_id: str) -> r.Rule:
        self._check_id("rule_id", rule_id)
        rule = await self._rules.get(rule_id)
        if rule is None:
            raise NotFound(f"no rule {rule_id}")
        return rule

    async def list_rules(self, limit: int | None, offset: int) -> Page[r.Rule]:
        limit, offset = _paging(limit, offset)
        items, total = await self._rules.list_rules(limit, offset)
        return Page(items, total, limit, offset)

    async def update_rule(self, rule_id: str, changes: RuleChanges) -> r.Rule:
        self._check_id("rule_id", rule_id)
        target = changes.target
        if target is not None:
            target = r.validate_target(target, block_private=self.block_private, allow=self._allow)
            await self._check_target(target.url)
        checked = RuleChanges(
            name=None if changes.name is None else r.validate_name(changes.name),
            event_type_pattern=None
            if changes.event_type_pattern is None
            else r.validate_pattern(changes.event_type_pattern),
            condition=None
            if changes.condition is None
            else r.validate_condition(changes.condition),
            target=target,
        )
        rule = await self._rules.update(rule_id, checked, self._clock.now())
        if rule is None:
            raise NotFound(f"no rule {rule_id}")
        return rule

    async def set_enabled(self, rule_id: str, enabled: bool, reason: str = "") -> r.Rule:
        self._check_id("rule_id", rule_id)
        # A reason is free text; control characters (NUL cannot even be stored) are dropped.
        reason = "".join(c for c in reason if ord(c) >= 0x20 and ord(c) != 0x7F).strip()
        rule = await self._rules.set_enabled(
            rule_id, enabled, reason[:500] or "disabled by the API", self._clock.now()
        )
        if rule is None:
            raise NotFound(f"no rule {rule_id}")
        return rule

    async def delete_rule(self, rule_id: str) -> None:
        self._check_id("rule_id", rule_id)
        if not await self._rules.delete(rule_id):
            raise NotFound(f"no rule {rule_id}")

    async def evaluate_rule(
        self, rule_id: str, pattern: str, condition: str, sample: SampleEvent
    ) -> RuleTest:
        """Whether ``sample`` would match the rule ``rule_id`` (enabled or not), or the
        inline ``pattern`` and ``condition``; validated as CreateRule validates them (a bad
        condition names its position). Reads the rule, writes nothing."""
        if rule_id:
            if pattern.strip() or condition.strip():
                raise InvalidInput(
                    "give either rule_id or event_type_pattern (with an optional condition)"
                )
            rule = await self.get_rule(rule_id)
            pattern, condition = rule.event_type_pattern, rule.condition
        else:
            pattern = r.validate_pattern(pattern)
            condition = r.validate_condition(condition)
        _check_sample(sample)
        now = self._clock.now()
        event = Event(
            event_id=self._new_id(),
            event_type=sample.event_type,
            aggregate_id=sample.aggregate_id,
            event_time=now,
            ingested_at=now,
            payload=dict(sample.payload),
            metadata=sample.metadata,
        )
        return evaluate(pattern, condition, event)

    async def list_deliveries(
        self, flt: DeliveryFilter, limit: int | None, offset: int
    ) -> Page[Delivery]:
        limit, offset = _paging(limit, offset)
        if flt.rule_id:
            self._check_id("rule_id", flt.rule_id)
        if flt.event_id:
            self._check_id("event_id", flt.event_id)
        if flt.status and flt.status not in STATUSES:
            raise InvalidInput(f"status {flt.status[:40]!r} is not one of {', '.join(STATUSES)}")
        if flt.since and flt.until and flt.since >= flt.until:
            raise InvalidInput("since must be earlier than until")
        items, total = await self._deliveries.list_deliveries(flt, limit, offset)
        return Page(items, total, limit, offset)

    async def get_delivery(self, delivery_id: str) -> Delivery:
        self._check_id("delivery_id", delivery_id)
        d = await self._deliveries.get_delivery(delivery_id)
        if d is None:
            raise NotFound(f"no delivery {delivery_id}")
        return d

    async def breakers(self) -> list[BreakerView]:
        return await self._deliveries.breakers()

    async def replay(
        self, delivery_ids: Sequence[str], all_failed: bool, rule_id: str
    ) -> list[str]:
        """Failed (or discarded) deliveries go back to pending with a fresh retry budget; the
        workers then send them through the same breaker and rate limit as new jobs."""
        if all_failed == bool(delivery_ids):
            raise InvalidInput("give either delivery_ids or all_failed=true")
        if len(delivery_ids) > MAX_REPLAY_IDS:
            raise InvalidInput(f"at most {MAX_REPLAY_IDS} delivery_ids at once")
        for d in delivery_ids:
            self._check_id("delivery_id", d)
        if rule_id:
            self._check_id("rule_id", rule_id)
        return await self._deliveries.replay(delivery_ids, all_failed, rule_id, self._clock.now())

    async def discard(self, delivery_id: str) -> Delivery:
        self._check_id("delivery_id", delivery_id)
        d = await self._deliveries.discard(delivery_id, self._clock.now())
        if d is None:
            raise NotFound(f"no delivery {delivery_id}")
        return d


def match_events(
    rules: Sequence[r.CompiledRule], events: Sequence[Event], new_id: Callable[[], str]
) -> list[NewJob]:
    """One job per (enabled rule, event) whose pattern and condition match."""
    jobs: list[NewJob] = []
    if not rules:
        return jobs
    for event in events:
        envelope = event.to_dict()
        for rule in rules:
            if rule.matches(event.event_type, envelope):
                jobs.append(
                    NewJob(
                        delivery_id=new_id(),
                        rule_id=rule.rule_id,
                        event_id=event.event_id,
                        event_type=event.event_type,
                        target_url=rule.target_url,
                        event=envelope,
                    )
                )
    return jobs
