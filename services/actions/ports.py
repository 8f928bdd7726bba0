"""Ports of the action orchestrator's core, and the plain values that cross them.

Adapters: ``store.py`` (PostgreSQL) implements every store port; ``delivery.py`` holds the
HTTP sender. All store methods raise ``Unavailable`` when the database cannot be used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from services.actions.policy import Admission, Policy
from services.actions.rules import CompiledRule, Rule, RuleDraft, Target

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
DISCARDED = "discarded"
SUPPRESSED = "suppressed"
STATUSES = (PENDING, DELIVERED, FAILED, DISCARDED, SUPPRESSED)


@dataclass(frozen=True, slots=True)
class RuleChanges:
    """A partial update; None leaves a field as it is."""

    name: str | None = None
    event_type_pattern: str | None = None
    condition: str | None = None
    target: Target | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    attempt: int
    started_at: datetime
    duration_ms: int
    outcome: str
    status_code: int
    error: str
    url: str


@dataclass(frozen=True, slots=True)
class Delivery:
    delivery_id: str
    rule_id: str
    event_id: str
    event_type: str
    target_url: str
    status: str
    attempt_count: int
    next_attempt_at: datetime | None
    last_error: str
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
    replay_count: int
    attempts: list[Attempt] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    rule_id: str = ""
    status: str = ""
    event_id: str = ""
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class BreakerView:
    endpoint: str
    state: str
    consecutive_failures: int
    retry_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class NewJob:
    """A matched (rule, event) pair, to become a delivery row."""

    delivery_id: str
    rule_id: str
    event_id: str
    event_type: str
    target_url: str
    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Job:
    """A claimed delivery with what the worker needs to send it (the rule as it is now)."""

    delivery_id: str
    rule_id: str
    event_type: str
    event: dict[str, Any]
    attempt_count: int
    # attempts since the last replay: the retry budget
    round_attempts: int
    created_at: datetime
    rule_enabled: bool
    target: Target
    # The claim's owner token: finish, extend and release act only while it still holds
    # the job (another worker may have claimed it after the lease ran out).
    lease_token: str = ""
    # When the lease runs out (None: unknown, the worker extends before sending).
    leased_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to a job's attempt, and what the store must now do atomically."""

    attempt: Attempt | None
    status: str  # the job's new status
    next_attempt_at: datetime | None
    last_error: str
    counts_attempt: bool
    breaker: str  # "success", "failure" or "" (no change)
    disable_rule_reason: str = ""


class RuleStore(Protocol):
    """Rule rows. Safe for concurrent use."""

    async def create(self, rule_id: str, draft: RuleDraft, now: datetime) -> Rule: ...

    async def get(self, rule_id: str) -> Rule | None: ...

    async def list_rules(self, limit: int, offset: int) -> tuple[list[Rule], int]: ...

    async def update(self, rule_id: str, changes: RuleChanges, now: datetime) -> Rule | None: ...

    async def set_enabled(
        self, rule_id: str, enabled: bool, reason: str, now: datetime
    ) -> Rule | None: ...

    async def delete(self, rule_id: str) -> bool:
        """Delete the rule with its deliveries and attempts; False if it did not exist."""
        ...


class DeliveryStore(Protocol):
    """Delivery rows, attempts and breakers, for the API. Safe for concurrent use."""

    async def list_deliveries(
        self, flt: DeliveryFilter, limit: int, offset: int
    ) -> tuple[list[Delivery], int]: ...

    async def get_delivery(self, delivery_id: str) -> Delivery | None: ...

    async def breakers(self) -> list[BreakerView]: ...

    async def replay(
        self, delivery_ids: Sequence[str], all_failed: bool, rule_id: str, now: datetime
    ) -> list[str]:
        """Put failed/discarded deliveries back to pending with a fresh retry budget, due
        now; return the ids that were replayed (others are left as they are)."""
        ...

    async def discard(self, delivery_id: str, now: datetime) -> Delivery | None:
        """failed -> discarded. Raises InvalidInput for a delivery in another state."""
        ...


class JobQueue(Protocol):
    """What delivery workers need. Safe for concurrent use by many workers and replicas.

    A claimed job is leased: no other worker claims it until ``locked_until``; a worker
    that dies leaves it to be claimed again after the lease (its attempt may be repeated).
    Every claim gets a new owner token (``Job.lease_token``); ``finish``, ``extend`` and
    ``release`` change the job only while that token still holds it, and say whether it did.
    """

    async def claim(
        self, now: datetime, lease: float, worker: str, busy: Sequence[str] = ()
    ) -> Job | None:
        """Take the due pending job with the earliest due time whose endpoint is not in
        ``busy``, leased until ``now + lease`` under a new owner token, or None."""
        ...

    async def admit(self, endpoint: str, now: datetime, policy: Policy) -> Admission:
        """Ask the endpoint's shared circuit breaker (read-modify-write under a row lock)."""
        ...

    async def reserve_slot(self, now: datetime, interval: float) -> datetime:
        """Reserve the next slot of the global rate limit; return when it starts."""
        ...

    async def extend(self, job: Job, until: datetime) -> bool:
        """Move the job's lease to ``until``; False (nothing changed) if the claim no longer
        holds it: the caller must not send."""
        ...

    async def finish(
        self, job: Job, outcome: Outcome, now: datetime, policy: Policy, worker: str
    ) -> bool:
        """In ONE transaction: record the attempt, set the job's status/schedule and release
        its lease, update the endpoint's breaker, and disable the rule if asked -- all only
        if the claim still holds the job. False: it does not (the lease ran out and another
        worker claimed it, or the job was deleted) and nothing was written. A delivered job
        is never sent again."""
        ...

    async def release(self, job: Job, now: datetime) -> bool:
        """Give a claimed job back untouched, due ``now`` (shutdown); False (nothing
        changed) if the claim no longer holds it."""
        ...


class JobSink(Protocol):
    """The consumer's side: enabled rules in, jobs out. Used from one thread (blocking)."""

    def enabled_rules(self) -> list[CompiledRule]: ...

    def enqueue(self, jobs: Sequence[NewJob], now: datetime, dedupe_window: float) -> int:
        """Insert jobs (a (rule_id, event_id) already present is skipped) and apply dedupe
        (same event type + target URL within the window -> status suppressed) in one
        transaction; return how many new rows. The caller commits offsets after this."""
        ...
