"""One delivery worker step against in-memory ports: what each HTTP result does to the job.

The PostgreSQL JobQueue is covered by tests/component/test_actions_store.py; this fake only
records what the worker asks of it.
"""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from cornjacket_sdk.webhooks import verify

from services.actions import policy as pol
from services.actions.delivery import DeliveryWorkers, SendResult
from services.actions.ports import DELIVERED, FAILED, PENDING, Job, Outcome
from services.actions.rules import Target
from services.core.clock import FixedClock

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SECRET = "whsec_" + base64.b64encode(b"d" * 32).decode()
POLICY = pol.Policy(jitter=0.0, rate_limit_per_minute=0)


class FakeQueue:
    def __init__(self, admission: pol.Admission | None = None) -> None:
        self.admission = admission or pol.Admission(True)
        self.finished: list[Outcome] = []
        self.admits = 0

    async def claim(
        self, now: datetime, lease: float, worker: str, busy: Sequence[str] = ()
    ) -> Job | None:
        return None

    async def admit(self, endpoint: str, now: datetime, policy: pol.Policy) -> pol.Admission:
        self.admits += 1
        return self.admission

    async def reserve_slot(self, now: datetime, interval: float) -> datetime:
        return now

    async def extend(self, delivery_id: str, until: datetime) -> None:
        pass

    async def finish(
        self, job: Job, outcome: Outcome, now: datetime, policy: pol.Policy, worker: str
    ) -> None:
        self.finished.append(outcome)

    async def release(self, delivery_id: str, now: datetime) -> None:
        pass


class FakeSender:
    def __init__(self, result: SendResult) -> None:
        self.result = result
        self.sent: list[tuple[str, dict[str, str], bytes]] = []

    async def send(
        self, url: str, headers: dict[str, str], body: bytes, seconds: float
    ) -> SendResult:
        self.sent.append((url, headers, body))
        return self.result


def job(**kw: Any) -> Job:
    base: dict[str, Any] = {
        "delivery_id": "0190c0de-0000-7000-8000-000000000001",
        "rule_id": "0190c0de-0000-7000-8000-0000000000aa",
        "event_type": "sensor.reading",
        "event": {"event_id": "e1", "payload": {"value": 85}},
        "attempt_count": 0,
        "round_attempts": 0,
        "created_at": T0,
        "rule_enabled": True,
        "target": Target("http://127.0.0.1:9/hook", {"X-Team": "ops"}, (SECRET,)),
    }
    base.update(kw)
    return Job(**base)


def step(queue: FakeQueue, sender: FakeSender, j: Job) -> Outcome:
    workers = DeliveryWorkers(
        queue,
        sender,
        FixedClock(T0),
        POLICY,
        workers=1,
        poll_interval=0.1,
        endpoint_concurrency=1,
        name="t",
        rng=random.Random(1),
    )
    asyncio.run(workers._process(j, "t/0", asyncio.Event()))
    [outcome] = queue.finished
    return outcome


def test_success_is_signed_and_marks_delivered_and_closes_the_breaker() -> None:
    sender = FakeSender(SendResult(pol.SUCCESS, 200))
    out = step(FakeQueue(), sender, job())
    assert (out.status, out.breaker, out.counts_attempt) == (DELIVERED, pol.SUCCESS, True)
    url, headers, body = sender.sent[0]
    assert url == "http://127.0.0.1:9/hook" and headers["X-Team"] == "ops"
    assert headers["content-type"] == "application/json"
    payload = verify(SECRET, headers, body, now=T0.timestamp())
    assert payload["event"] == {"event_id": "e1", "payload": {"value": 85}}


def test_failure_is_retried_after_the_backoff_and_counts_against_the_endpoint() -> None:
    out = step(FakeQueue(), FakeSender(SendResult(pol.FAILURE, 500, error="HTTP 500")), job())
    assert out.status == PENDING and out.breaker == pol.FAILURE
    assert out.next_attempt_at == T0 + timedelta(seconds=1)


def test_the_last_failure_goes_to_the_dlq() -> None:
    out = step(
        FakeQueue(),
        FakeSender(SendResult(pol.TIMEOUT, error="no response within 30s")),
        job(attempt_count=5, round_attempts=5),
    )
    assert out.status == FAILED and "gave up after 6 attempts" in out.last_error


def test_429_honours_retry_after_without_blaming_the_endpoint() -> None:
    out = step(FakeQueue(), FakeSender(SendResult(pol.FAILURE, 429, "7", "HTTP 429")), job())
    assert out.status == PENDING and out.breaker == ""
    assert out.next_attempt_at == T0 + timedelta(seconds=7)


def test_410_disables_the_rule() -> None:
    out = step(FakeQueue(), FakeSender(SendResult(pol.GONE, 410, error="HTTP 410")), job())
    assert out.status == FAILED and "410 Gone" in out.disable_rule_reason


def test_an_open_breaker_short_circuits_without_sending_or_spending_budget() -> None:
    retry_at = T0 + timedelta(minutes=5)
    queue = FakeQueue(pol.Admission(False, retry_at=retry_at))
    sender = FakeSender(SendResult(pol.SUCCESS, 200))
    out = step(queue, sender, job())
    assert sender.sent == [] and out.status == PENDING and not out.counts_attempt
    assert out.attempt is not None and out.attempt.outcome == pol.SHORT_CIRCUITED
    assert out.next_attempt_at is not None and retry_at <= out.next_attempt_at


def test_a_job_of_a_disabled_rule_is_not_sent() -> None:
    sender = FakeSender(SendResult(pol.SUCCESS, 200))
    queue = FakeQueue()
    out = step(queue, sender, job(rule_enabled=False))
    assert sender.sent == [] and queue.admits == 0 and out.status == FAILED
