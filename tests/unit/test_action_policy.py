"""The delivery policy: backoff with jitter, Retry-After, breaker transitions."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from services.actions import policy as pol
from services.core.clock import FixedClock

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
P = pol.Policy()


def test_backoff_schedule_with_jitter_then_give_up() -> None:
    rng = random.Random(7)
    for attempts, base in enumerate((1.0, 2.0, 4.0, 8.0, 16.0), start=1):
        delays = {pol.backoff_delay(P, attempts, rng) for _ in range(50)}
        assert all(d is not None and base * 0.8 <= d <= base * 1.2 for d in delays)
        assert len(delays) > 1, "jitter spreads the retries"
    assert pol.backoff_delay(P, 6, rng) is None
    assert pol.backoff_delay(pol.Policy(jitter=0.0), 3, rng) == 4.0


def test_retry_after_is_honoured_on_429_and_503_only() -> None:
    rng = random.Random(1)
    assert pol.retry_delay(P, 1, 429, "7", T0, rng) == 7.0
    assert pol.retry_delay(P, 1, 503, "7", T0, rng) == 7.0
    assert pol.retry_delay(P, 1, 503, "Fri, 01 May 2026 12:00:30 GMT", T0, rng) == 30.0
    assert pol.retry_delay(P, 1, 429, "99999", T0, rng) == P.retry_after_max
    d = pol.retry_delay(P, 1, 500, "7", T0, rng)
    assert d is not None and d < 2
    d = pol.retry_delay(P, 1, 429, "soon", T0, rng)
    assert d is not None and d < 2
    # Retry-After does not extend the retry budget.
    assert pol.retry_delay(P, 6, 429, "7", T0, rng) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", None), ("0", 0.0), ("120", 120.0), ("Fri, 01 May 2026 11:59:00 GMT", 0.0), ("x", None)],
)
def test_parse_retry_after(text: str, expected: float | None) -> None:
    assert pol.parse_retry_after(text, T0) == expected


def test_classify_and_what_counts_against_an_endpoint() -> None:
    assert pol.classify(200) == pol.classify(204) == pol.SUCCESS
    assert pol.classify(410) == pol.GONE
    assert pol.classify(302) == pol.classify(500) == pol.classify(404) == pol.FAILURE
    assert pol.counts_against_endpoint(pol.FAILURE, 500)
    assert pol.counts_against_endpoint(pol.TIMEOUT, 0)
    assert pol.counts_against_endpoint(pol.CONNECTION_ERROR, 0)
    assert not pol.counts_against_endpoint(pol.FAILURE, 429)


def test_breaker_opens_after_threshold_short_circuits_then_half_opens_with_one_trial() -> None:
    clock = FixedClock(T0)
    b = pol.Breaker()
    for _ in range(4):
        b = pol.on_failure(b, clock.now(), P)
        assert b.state == pol.CLOSED
        assert pol.admit(b, clock.now(), P.lease)[0].allowed
    b = pol.on_failure(b, clock.now(), P)
    assert b.state == pol.OPEN and b.open_until == T0 + timedelta(minutes=5)
    admission, b2 = pol.admit(b, clock.now(), P.lease)
    assert not admission.allowed and admission.retry_at == b.open_until and b2 == b

    clock.advance(timedelta(minutes=5))
    trial, b = pol.admit(b, clock.now(), P.lease)
    assert trial.allowed and trial.trial and b.state == pol.HALF_OPEN
    # One trial at a time: others wait for its outcome (or its lease).
    other, _ = pol.admit(b, clock.now(), P.lease)
    assert not other.allowed and other.retry_at == clock.now() + timedelta(seconds=P.lease)

    # A failed trial opens it again for a full cooldown.
    b = pol.on_failure(b, clock.now(), P)
    assert b.state == pol.OPEN and b.open_until == clock.now() + timedelta(minutes=5)

    clock.advance(timedelta(minutes=5))
    _, b = pol.admit(b, clock.now(), P.lease)
    assert pol.on_success(b) == pol.Breaker()


def test_a_trial_whose_worker_died_is_replaced_after_its_lease() -> None:
    b = pol.Breaker(pol.HALF_OPEN, 5, None, T0)
    admission, after = pol.admit(b, T0 + timedelta(seconds=1), P.lease)
    assert admission.trial and after.trial_until == T0 + timedelta(seconds=1 + P.lease)


def test_rate_interval() -> None:
    assert pol.Policy(rate_limit_per_minute=10).rate_interval == 6.0
    assert pol.Policy(rate_limit_per_minute=0).rate_interval == 0.0
