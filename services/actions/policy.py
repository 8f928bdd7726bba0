"""The webhook delivery policy as pure functions: backoff, Retry-After, breaker transitions.

The stores and workers apply these; keeping them pure lets the unit tests pin the policy
down with a fixed clock and a seeded random source.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class Policy:
    timeout: float = 30.0
    backoff: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
    jitter: float = 0.2
    retry_after_max: float = 3600.0
    breaker_threshold: int = 5
    breaker_cooldown: float = 300.0
    rate_limit_per_minute: int = 10
    dedupe_window: float = 300.0
    max_job_age: float = 24 * 3600.0

    @property
    def lease(self) -> float:
        """A claimed job is invisible to other workers this long (one attempt plus slack)."""
        return self.timeout + 10.0

    @property
    def rate_interval(self) -> float:
        """Seconds between two deliveries anywhere (0 = unlimited)."""
        return 60.0 / self.rate_limit_per_minute if self.rate_limit_per_minute else 0.0

    @property
    def max_attempts(self) -> int:
        return len(self.backoff) + 1


def backoff_delay(policy: Policy, attempts: int, rng: random.Random) -> float | None:
    """Delay before the next attempt after ``attempts`` failed ones; None = give up (DLQ).

    Jitter spreads retries of many jobs that failed together (±``policy.jitter``).
    """
    if attempts > len(policy.backoff):
        return None
    base = policy.backoff[attempts - 1]
    return max(0.0, base * (1.0 + policy.jitter * rng.uniform(-1.0, 1.0)))


def parse_retry_after(value: str, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if unusable."""
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():  # str.isdigit() alone accepts superscripts
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


def retry_delay(
    policy: Policy,
    attempts: int,
    status_code: int,
    retry_after: str,
    now: datetime,
    rng: random.Random,
) -> float | None:
    """Delay before the next attempt, honouring Retry-After on 429/503 (capped); None = DLQ."""
    delay = backoff_delay(policy, attempts, rng)
    if delay is None:
        return None
    if status_code in (429, 503):
        asked = parse_retry_after(retry_after, now)
        if asked is not None:
            return min(asked, policy.retry_after_max)
    return delay


# --- outcomes ------------------------------------------------------------------------------

SUCCESS = "success"
FAILURE = "failure"
TIMEOUT = "timeout"
CONNECTION_ERROR = "connection_error"
SHORT_CIRCUITED = "short_circuited"
GONE = "gone"
BLOCKED = "blocked"
# The request could not be made as configured (a header value or host the HTTP client
# refuses): retried with backoff into the DLQ, not the endpoint's fault.
INVALID_REQUEST = "invalid_request"
# The attempt failed inside the orchestrator (a bug): recorded and retried the same way, so
# the job still ends delivered or in the DLQ instead of coming back after every lease.
ERROR = "error"


def classify(status_code: int) -> str:
    if 200 <= status_code < 300:
        return SUCCESS
    if status_code == 410:
        return GONE
    return FAILURE


def counts_against_endpoint(outcome: str, status_code: int) -> bool:
    """Failures that say the endpoint is unwell. A 429 means it is up and asks us to slow
    down (Retry-After handles that); a 410 disables the rule instead."""
    if outcome in (TIMEOUT, CONNECTION_ERROR):
        return True
    return outcome == FAILURE and status_code != 429


# --- circuit breaker -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Breaker:
    state: str = CLOSED
    failures: int = 0
    open_until: datetime | None = None
    trial_until: datetime | None = None

    def retry_at(self) -> datetime | None:
        if self.state == OPEN:
            return self.open_until
        if self.state == HALF_OPEN:
            return self.trial_until
        return None


@dataclass(frozen=True, slots=True)
class Admission:
    allowed: bool
    trial: bool = False
    retry_at: datetime | None = None


def admit(b: Breaker, now: datetime, trial_lease: float) -> tuple[Admission, Breaker]:
    """May a request go to this endpoint now? Open: no, until the cooldown ends; then one
    trial (half-open) at a time, whose lease lets a new trial start if that worker died."""
    if b.state == CLOSED:
        return Admission(True), b
    if b.state == OPEN and b.open_until is not None and now < b.open_until:
        return Admission(False, retry_at=b.open_until), b
    if b.state == HALF_OPEN and b.trial_until is not None and now < b.trial_until:
        return Admission(False, retry_at=b.trial_until), b
    until = now + timedelta(seconds=trial_lease)
    return Admission(True, trial=True), replace(b, state=HALF_OPEN, trial_until=until)


def on_success(b: Breaker) -> Breaker:
    return Breaker(CLOSED, 0, None, None)


def on_failure(b: Breaker, now: datetime, policy: Policy) -> Breaker:
    """Count a failure; the threshold-th consecutive one (or a failed trial) opens it."""
    failures = b.failures + 1
    open_until = now + timedelta(seconds=policy.breaker_cooldown)
    if b.state == HALF_OPEN:
        return Breaker(OPEN, failures, open_until, None)
    if b.state == OPEN:
        return replace(b, failures=failures)
    if failures >= policy.breaker_threshold:
        return Breaker(OPEN, failures, open_until, None)
    return replace(b, failures=failures)
