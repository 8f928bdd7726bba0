"""One delivery worker step against in-memory ports: what each HTTP result does to the job.

The PostgreSQL JobQueue is covered by tests/component/test_actions_store.py; this fake only
records what the worker asks of it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from cornjacket_sdk.webhooks import verify
from prometheus_client import REGISTRY

from services.actions import policy as pol
from services.actions.delivery import (
    DeliveryWorkers,
    HttpxSender,
    SendResult,
    response_excerpt,
    webhook_body,
)
from services.actions.ports import DELIVERED, FAILED, PENDING, Job, Outcome
from services.actions.rules import Target
from services.core.clock import FixedClock

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SECRET = "whsec_" + base64.b64encode(b"d" * 32).decode()
POLICY = pol.Policy(jitter=0.0, rate_limit_per_minute=0)


class FakeQueue:
    def __init__(
        self,
        admission: pol.Admission | None = None,
        *,
        clock: FixedClock | None = None,
        admit_takes: timedelta = timedelta(0),
        holds_lease: bool = True,
        jobs: Sequence[Job] = (),
    ) -> None:
        self.admission = admission or pol.Admission(True)
        self.finished: list[Outcome] = []
        self.admits = 0
        self.clock = clock
        self.admit_takes = admit_takes
        self.holds_lease = holds_lease
        self.jobs = list(jobs)
        self.calls: list[str] = []
        self.extended: list[datetime] = []
        self.finished_event = asyncio.Event()

    async def claim(
        self, now: datetime, lease: float, worker: str, busy: Sequence[str] = ()
    ) -> Job | None:
        return self.jobs.pop(0) if self.jobs else None

    async def admit(self, endpoint: str, now: datetime, policy: pol.Policy) -> pol.Admission:
        self.admits += 1
        self.calls.append("admit")
        if self.clock is not None:
            self.clock.advance(self.admit_takes)  # e.g. a wait for a pooled connection
        return self.admission

    async def reserve_slot(self, now: datetime, interval: float) -> datetime:
        return now

    async def extend(self, job: Job, until: datetime) -> bool:
        self.calls.append("extend")
        self.extended.append(until)
        return self.holds_lease

    async def finish(
        self, job: Job, outcome: Outcome, now: datetime, policy: pol.Policy, worker: str
    ) -> bool:
        self.calls.append("finish")
        self.finished.append(outcome)
        self.finished_event.set()
        return self.holds_lease

    async def release(self, job: Job, now: datetime) -> bool:
        self.calls.append("release")
        return self.holds_lease


class FakeSender:
    def __init__(self, result: SendResult | BaseException, queue: FakeQueue | None = None) -> None:
        self.result = result
        self.queue = queue
        self.sent: list[tuple[str, dict[str, str], bytes]] = []

    async def send(
        self, url: str, headers: dict[str, str], body: bytes, seconds: float
    ) -> SendResult:
        self.sent.append((url, headers, body))
        if self.queue is not None:
            self.queue.calls.append("send")
        if isinstance(self.result, BaseException):
            raise self.result
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
        "lease_token": "t/0:token",
        "leased_until": T0 + timedelta(seconds=POLICY.lease),
    }
    base.update(kw)
    return Job(**base)


def make_workers(
    queue: FakeQueue, sender: FakeSender, clock: FixedClock | None = None
) -> DeliveryWorkers:
    return DeliveryWorkers(
        queue,
        sender,
        clock or FixedClock(T0),
        POLICY,
        workers=1,
        poll_interval=0.1,
        endpoint_concurrency=1,
        name="t",
        rng=random.Random(1),
    )


def step(queue: FakeQueue, sender: FakeSender, j: Job) -> Outcome:
    asyncio.run(make_workers(queue, sender)._process(j, "t/0", asyncio.Event()))
    [outcome] = queue.finished
    return outcome


async def run_workers_until(
    queue: FakeQueue, reached: Callable[[], asyncio.Event], grace: float = 5
) -> None:
    """Run one worker pool over ``queue`` until ``reached()`` is set (bounded, so a
    regression fails instead of hanging), then stop it with ``grace``."""
    workers = make_workers(queue, FakeSender(SendResult(pol.SUCCESS, 200)))
    stop = asyncio.Event()
    task = asyncio.create_task(workers.run(stop, grace=grace))
    await asyncio.wait_for(reached().wait(), 60)
    stop.set()
    await task


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


# --- every outcome of an attempt ends as a recorded attempt --------------------------------


def test_a_retry_after_that_only_looks_like_digits_falls_back_to_the_backoff() -> None:
    assert pol.parse_retry_after("\u00b2", T0) is None  # str.isdigit() is true for it
    assert pol.parse_retry_after("\u0661\u0662", T0) is None  # Arabic-Indic digits
    out = step(FakeQueue(), FakeSender(SendResult(pol.FAILURE, 503, "\u00b2", "HTTP 503")), job())
    assert out.status == PENDING and out.next_attempt_at == T0 + timedelta(seconds=1)


def test_a_sender_that_raises_still_records_an_attempt_with_backoff() -> None:
    sender = FakeSender(UnicodeEncodeError("ascii", "caf\u00e9", 3, 4, "not ascii"))
    out = step(FakeQueue(), sender, job())
    assert out.attempt is not None and out.attempt.outcome == pol.ERROR
    assert "UnicodeEncodeError" in out.attempt.error
    assert out.status == PENDING and out.counts_attempt and out.breaker == ""
    assert out.next_attempt_at == T0 + timedelta(seconds=1)
    last = step(FakeQueue(), sender, job(attempt_count=5, round_attempts=5))
    assert last.status == FAILED, "the retry budget still ends in the DLQ"


async def test_a_request_httpx_cannot_build_is_a_recorded_attempt_not_an_escape() -> None:
    """Rules saved before header/host validation: httpx raises before any connection."""
    sender = HttpxSender()
    try:
        bad_header = await sender.send("http://127.0.0.1:9/x", {"x-key": "caf\u00e9"}, b"{}", 5.0)
        bad_host = await sender.send("http://\u2603.net/x", {}, b"{}", 5.0)
        bad_ipv4 = await sender.send("http://999.1.1.1/x", {}, b"{}", 5.0)
    finally:
        await sender.close()
    for result in (bad_header, bad_host, bad_ipv4):
        assert result.outcome == pol.INVALID_REQUEST, result
        assert not pol.counts_against_endpoint(result.outcome, result.status_code)
    assert "UnicodeEncodeError" in bad_header.error and "InvalidURL" in bad_host.error


def test_a_bug_before_the_send_is_recorded_by_the_worker_loop_not_looped_forever() -> None:
    class BrokenQueue(FakeQueue):
        async def admit(self, endpoint: str, now: datetime, policy: pol.Policy) -> pol.Admission:
            raise RuntimeError("a bug")

    async def run() -> Outcome:
        queue = BrokenQueue(jobs=[job()])
        await run_workers_until(queue, lambda: queue.finished_event)
        [outcome] = queue.finished
        return outcome

    out = asyncio.run(run())
    assert out.attempt is not None and out.attempt.outcome == pol.ERROR
    assert "RuntimeError: a bug" in out.attempt.error
    assert out.status == PENDING and out.counts_attempt and out.breaker == ""
    assert out.next_attempt_at == T0 + timedelta(seconds=1)


# --- the lease covers every step before the send -------------------------------------------


def test_the_lease_is_extended_before_sending_when_the_pre_send_steps_ate_into_it() -> None:
    clock = FixedClock(T0)
    queue = FakeQueue(clock=clock, admit_takes=timedelta(seconds=20))
    sender = FakeSender(SendResult(pol.SUCCESS, 200), queue)
    asyncio.run(make_workers(queue, sender, clock)._process(job(), "t/0", asyncio.Event()))
    assert queue.calls == ["admit", "extend", "send", "finish"]
    # From the send on, the lease covers a whole attempt and the recording of its result.
    assert queue.extended == [T0 + timedelta(seconds=20 + POLICY.lease)]


def test_a_fresh_lease_is_not_extended_one_round_trip_saved() -> None:
    queue = FakeQueue()
    sender = FakeSender(SendResult(pol.SUCCESS, 200), queue)
    step(queue, sender, job())
    assert queue.calls == ["admit", "send", "finish"]


def test_a_lease_lost_before_the_send_sends_and_records_nothing() -> None:
    clock = FixedClock(T0)
    queue = FakeQueue(clock=clock, admit_takes=timedelta(seconds=45), holds_lease=False)
    sender = FakeSender(SendResult(pol.SUCCESS, 200), queue)
    before = leases_lost()
    asyncio.run(make_workers(queue, sender, clock)._process(job(), "t/0", asyncio.Event()))
    assert sender.sent == [] and queue.finished == []
    assert queue.calls == ["admit", "extend"]
    assert leases_lost() == before + 1


def test_a_lease_lost_at_finish_is_counted_and_not_reported_delivered() -> None:
    queue = FakeQueue(holds_lease=False)
    workers = make_workers(queue, FakeSender(SendResult(pol.SUCCESS, 200), queue))
    before = leases_lost()
    asyncio.run(workers._process(job(), "t/0", asyncio.Event()))
    assert queue.calls == ["admit", "send", "finish"]
    assert workers.delivered == 0 and leases_lost() == before + 1


def leases_lost() -> float:
    value = REGISTRY.get_sample_value("cornjacket_webhook_leases_lost_total")
    return value or 0.0


# --- the body ------------------------------------------------------------------------------


def test_the_webhook_timestamp_is_utc_whatever_zone_the_database_session_used() -> None:
    berlin = timezone(timedelta(hours=2))
    body = json.loads(webhook_body(job(created_at=T0.astimezone(berlin))))
    assert body["timestamp"] == "2026-05-01T12:00:00Z"
    assert json.loads(webhook_body(job()))["timestamp"] == "2026-05-01T12:00:00Z"


def test_error_excerpts_are_short_and_clean() -> None:
    text = response_excerpt(b"oops\x00\x01\x1b[31m\r\nline2 \xff\xfe" + b"x" * 5000)
    assert "\x00" not in text and "\x1b" not in text and "\r" not in text
    assert text.startswith("oops") and "line2" in text and len(text) <= 200


def test_a_shutdown_cancel_while_an_error_is_being_recorded_releases_the_job() -> None:
    """The cancel lands inside the catch-all's recording call (a sibling except clause
    would not see it): the job is still released, not left to wait out its lease."""

    class SlowRecording(FakeQueue):
        recording = asyncio.Event()

        async def admit(self, endpoint: str, now: datetime, policy: pol.Policy) -> pol.Admission:
            raise RuntimeError("a bug")

        async def finish(
            self, job: Job, outcome: Outcome, now: datetime, policy: pol.Policy, worker: str
        ) -> bool:
            self.recording.set()
            await asyncio.Event().wait()  # the database is slow: still recording at the cancel
            return True

    async def run() -> list[str]:
        queue = SlowRecording(jobs=[job()])
        await run_workers_until(queue, lambda: queue.recording, grace=0.01)
        return queue.calls

    assert asyncio.run(run())[-1] == "release"


def test_a_claim_that_fails_for_another_reason_than_an_outage_does_not_kill_the_worker() -> None:
    class FlakyClaim(FakeQueue):
        failed = False

        async def claim(
            self, now: datetime, lease: float, worker: str, busy: Sequence[str] = ()
        ) -> Job | None:
            if not self.failed:
                self.failed = True
                raise RuntimeError("unexpected")
            return await super().claim(now, lease, worker, busy)

    async def run() -> list[Outcome]:
        queue = FlakyClaim(jobs=[job()])
        await run_workers_until(queue, lambda: queue.finished_event)
        return queue.finished

    [outcome] = asyncio.run(run())
    assert outcome.status == DELIVERED


def test_a_blocked_attempt_is_final_and_not_the_endpoints_fault() -> None:
    """The sender refused to connect (the target resolves to a forbidden address)."""
    out = step(
        FakeQueue(), FakeSender(SendResult(pol.BLOCKED, error="resolves to 127.0.0.1")), job()
    )
    assert out.attempt is not None and out.attempt.outcome == pol.BLOCKED
    assert out.status == FAILED and out.breaker == "" and not out.counts_attempt


def test_a_forbidden_literal_target_is_blocked_before_breaker_and_rate_limit() -> None:
    from services.actions.delivery import ResolvingGuard

    queue = FakeQueue()
    sender = FakeSender(SendResult(pol.SUCCESS, 200))
    workers = DeliveryWorkers(
        queue,
        sender,
        FixedClock(T0),
        POLICY,
        workers=1,
        poll_interval=0.1,
        endpoint_concurrency=1,
        name="t",
        guard=ResolvingGuard(),
    )
    asyncio.run(workers._process(job(), "t/0", asyncio.Event()))
    [out] = queue.finished
    assert out.attempt is not None and out.attempt.outcome == pol.BLOCKED
    assert out.status == FAILED and queue.admits == 0 and sender.sent == []
