"""The orchestrator's PostgreSQL adapters against a real database: claiming and leases,
no duplicate jobs, dedupe windows, the shared breaker and rate limit. Time is passed in
(the injectable clock), so leases and windows expire without waiting."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import uuid_utils

from services.actions import policy as pol
from services.actions.consumer import JobPlanner
from services.actions.ports import DELIVERED, FAILED, PENDING, Attempt, NewJob, Outcome
from services.actions.rules import RuleDraft, Target
from services.actions.secretbox import SecretBox
from services.actions.store import PostgresActionStore, PostgresJobSink
from services.core.events import Event
from services.infra import migrations
from services.infra.codec import encode_event
from services.infra.postgres import open_pool

pytestmark = pytest.mark.component

BOX = SecretBox([b"k" * 32])  # the signing secrets are sealed at rest

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()
POLICY = pol.Policy(breaker_threshold=3, breaker_cooldown=60, timeout=5)


class FixedClock:
    def now(self) -> datetime:
        return T0


def new_id() -> str:
    return str(uuid_utils.uuid7())


@pytest.fixture
async def stores(database: str) -> AsyncIterator[tuple[PostgresActionStore, PostgresActionStore]]:
    """Two stores on two pools: two replicas sharing one database."""
    await asyncio.to_thread(migrations.apply, database, "actions")
    async with (
        open_pool(database, max_size=4, acquire_timeout=5, name="a") as a,
        open_pool(database, max_size=4, acquire_timeout=5, name="b") as b,
    ):
        yield PostgresActionStore(a, BOX), PostgresActionStore(b, BOX)


async def make_rule(store: PostgresActionStore, url: str) -> str:
    rule_id = new_id()
    await store.create(
        rule_id, RuleDraft("r", "sensor.reading", "", Target(url, {}, (SECRET,))), T0
    )
    return rule_id


def job(
    rule_id: str, url: str, event_id: str | None = None, event_type: str = "sensor.reading"
) -> NewJob:
    eid = event_id or new_id()
    return NewJob(new_id(), rule_id, eid, event_type, url, {"event_id": eid})


def others(database: str, endpoint: str) -> list[str]:
    """Every other endpoint with jobs in this module's database: passed as ``busy`` so a
    claim takes only this test's jobs."""
    with psycopg.connect(database) as conn:
        rows = conn.execute(
            "SELECT DISTINCT endpoint FROM actions.deliveries WHERE endpoint <> %s", (endpoint,)
        ).fetchall()
    return [r[0] for r in rows]


async def one_job(
    store: PostgresActionStore, database: str, endpoint: str, path: str, event_type: str
) -> tuple[str, str, list[str]]:
    """A rule for ``endpoint`` + ``path`` with one pending job of ``event_type``: its url,
    rule id and the other endpoints (``busy``, so a claim takes only this job)."""
    url = endpoint + path
    rule_id = await make_rule(store, url)
    sink = PostgresJobSink(database)
    try:
        assert sink.enqueue([job(rule_id, url, event_type=event_type)], T0, 0) == 1
    finally:
        sink.close()
    return url, rule_id, others(database, endpoint)


def delivered(attempt: int) -> Outcome:
    a = Attempt(attempt, T0, 1, pol.SUCCESS, 200, "", "http://x")
    return Outcome(a, DELIVERED, None, "", True, pol.SUCCESS)


async def test_claims_are_disjoint_leased_and_a_dead_workers_job_comes_back(
    stores: tuple[PostgresActionStore, PostgresActionStore], database: str
) -> None:
    a, b = stores
    url = "http://127.0.0.1:9/lease"
    rule_id = await make_rule(a, url)
    sink = PostgresJobSink(database)
    try:
        assert sink.enqueue([job(rule_id, url) for _ in range(2)], T0, 0) == 2
    finally:
        sink.close()
    ja, jb = await asyncio.gather(a.claim(T0, 30, "wa"), b.claim(T0, 30, "wb"))
    assert ja is not None and jb is not None and ja.delivery_id != jb.delivery_id
    assert await a.claim(T0 + timedelta(seconds=29), 30, "wc") is None, "leased"

    # wa finishes; wb dies. After wb's lease, another worker gets wb's job.
    await a.finish(ja, delivered(1), T0, POLICY, "wa")
    again = await b.claim(T0 + timedelta(seconds=31), 30, "wd")
    assert again is not None and again.delivery_id == jb.delivery_id
    # The dead worker's late result does not touch the job it no longer holds.
    await b.finish(jb, delivered(1), T0 + timedelta(seconds=32), POLICY, "wb")
    d = await a.get_delivery(jb.delivery_id)
    assert d is not None and d.status == PENDING
    await b.finish(again, delivered(1), T0 + timedelta(seconds=33), POLICY, "wd")
    d = await a.get_delivery(jb.delivery_id)
    assert d is not None and d.status == DELIVERED and d.attempt_count == 1
    # A delivered job is never claimed again.
    assert await a.claim(T0 + timedelta(hours=1), 30, "we") is None


async def test_no_duplicate_jobs_and_the_dedupe_window(
    stores: tuple[PostgresActionStore, PostgresActionStore], database: str
) -> None:
    a, _ = stores
    url = "http://127.0.0.1:9/dedupe"
    rule_id = await make_rule(a, url)
    sink = PostgresJobSink(database)
    try:
        first = job(rule_id, url, event_type="sensor.dedupe")
        assert sink.enqueue([first], T0, 300) == 1
        # The same event again (a re-delivery): no new row at all.
        assert sink.enqueue([job(rule_id, url, first.event_id, "sensor.dedupe")], T0, 300) == 0
        inside = job(rule_id, url, event_type="sensor.dedupe")
        assert sink.enqueue([inside], T0 + timedelta(seconds=299), 300) == 1
        after = job(rule_id, url, event_type="sensor.dedupe")
        assert sink.enqueue([after], T0 + timedelta(seconds=301), 300) == 1
    finally:
        sink.close()
    statuses = {
        j.delivery_id: (await a.get_delivery(j.delivery_id)).status  # type: ignore[union-attr]
        for j in (first, inside, after)
    }
    assert statuses == {
        first.delivery_id: "pending",
        inside.delivery_id: "suppressed",
        after.delivery_id: "pending",
    }


async def test_breaker_state_is_shared_by_replicas(
    stores: tuple[PostgresActionStore, PostgresActionStore], database: str
) -> None:
    a, b = stores
    url = "http://127.0.0.1:9/breaker"
    rule_id = await make_rule(a, url)
    sink = PostgresJobSink(database)
    try:
        sink.enqueue([job(rule_id, url, event_type=f"sensor.b{i}") for i in range(3)], T0, 0)
    finally:
        sink.close()
    fail = Outcome(
        Attempt(1, T0, 1, pol.FAILURE, 500, "HTTP 500", url), PENDING, T0, "x", True, pol.FAILURE
    )
    for i, store in enumerate((a, b, a)):
        claimed = await store.claim(T0, 30, f"w{i}")
        assert claimed is not None
        assert (await store.admit(claimed.target.endpoint, T0, POLICY)).allowed
        await store.finish(claimed, fail, T0, POLICY, f"w{i}")
    endpoint = "http://127.0.0.1:9"
    [view] = [v for v in await b.breakers() if v.endpoint == endpoint]
    assert view.state == "open" and view.consecutive_failures == 3
    refused = await b.admit(endpoint, T0 + timedelta(seconds=59), POLICY)
    assert not refused.allowed and refused.retry_at == T0 + timedelta(seconds=60)
    later = T0 + timedelta(seconds=61)
    trials = await asyncio.gather(
        a.admit(endpoint, later, POLICY), b.admit(endpoint, later, POLICY)
    )
    assert sorted(t.allowed for t in trials) == [False, True], "one trial across replicas"


async def test_rate_limit_slots_are_spaced_across_replicas(
    stores: tuple[PostgresActionStore, PostgresActionStore],
) -> None:
    a, b = stores
    slots = [await store.reserve_slot(T0 + timedelta(days=1), 6.0) for store in (a, b, a, b)]
    assert slots == [T0 + timedelta(days=1, seconds=6 * i) for i in range(4)]
    # Idle long enough: the next slot is now, not in the past.
    idle = T0 + timedelta(days=2)
    assert await b.reserve_slot(idle, 6.0) == idle


async def test_purge_keeps_failed_and_pending_deliveries(
    stores: tuple[PostgresActionStore, PostgresActionStore], database: str
) -> None:
    a, _ = stores
    url = "http://127.0.0.1:9/purge"
    rule_id = await make_rule(a, url)
    sink = PostgresJobSink(database)
    old = T0 - timedelta(days=30)
    try:
        jobs = [job(rule_id, url, event_type=f"sensor.p{i}") for i in range(2)]
        sink.enqueue(jobs, old, 0)
    finally:
        sink.close()
    claimed = await a.claim(old, 30, "w")
    assert claimed is not None
    await a.finish(claimed, delivered(1), old, POLICY, "w")
    assert await a.purge(T0, 7 * 86400) == 1
    assert await a.get_delivery(claimed.delivery_id) is None
    pending = next(j for j in jobs if j.delivery_id != claimed.delivery_id)
    assert await a.get_delivery(pending.delivery_id) is not None


async def test_every_lease_operation_is_checked_against_the_claims_owner_token(
    stores: tuple[PostgresActionStore, PostgresActionStore], database: str
) -> None:
    """Two replicas run a worker of the same name; the first one's lease runs out mid-send
    and the second claims the job. Nothing the first does afterwards may touch the job."""
    a, b = stores
    url, rule_id, busy = await one_job(a, database, "http://127.0.0.1:11", "/owner", "sensor.owner")
    first = await a.claim(T0, 30, "actions/0", busy)
    second = await b.claim(T0 + timedelta(seconds=31), 30, "actions/0", busy)
    assert first is not None and second is not None
    assert second.delivery_id == first.delivery_id
    assert first.leased_until == T0 + timedelta(seconds=30)

    # The first worker's late results: a 410 (closes the breaker, disables the rule, fails
    # the job) and a failure (counts against the breaker). Neither is written.
    gone = Outcome(
        Attempt(1, T0, 1, pol.GONE, 410, "HTTP 410", url),
        FAILED,
        None,
        "gone",
        True,
        pol.SUCCESS,
        "endpoint answered 410 Gone",
    )
    failure = Outcome(
        Attempt(1, T0, 1, pol.FAILURE, 500, "HTTP 500", url), PENDING, T0, "x", True, pol.FAILURE
    )
    for late in (gone, failure):
        assert await a.finish(first, late, T0 + timedelta(seconds=32), POLICY, "actions/0") is False
    d = await a.get_delivery(first.delivery_id)
    assert d is not None and (d.status, d.attempt_count, d.attempts) == (PENDING, 0, [])
    rule = await a.get(rule_id)
    assert rule is not None and rule.enabled
    assert [v for v in await a.breakers() if v.endpoint == "http://127.0.0.1:11"] == []

    # Its extend and release (shutdown) do not move or unlock the second worker's lease.
    assert await a.extend(first, T0 + timedelta(hours=1)) is False
    assert await a.release(first, T0 + timedelta(seconds=33)) is False
    assert await a.claim(T0 + timedelta(seconds=34), 30, "thief", busy) is None

    # The holder can extend, and its result is recorded.
    assert await b.extend(second, T0 + timedelta(seconds=120)) is True
    assert await a.claim(T0 + timedelta(seconds=90), 30, "thief", busy) is None
    assert await b.finish(second, delivered(1), T0 + timedelta(seconds=95), POLICY, "actions/0")
    d = await a.get_delivery(first.delivery_id)
    assert d is not None and d.status == DELIVERED and len(d.attempts) == 1


async def test_release_gives_the_job_back_to_the_next_claim(
    stores: tuple[PostgresActionStore, PostgresActionStore], database: str
) -> None:
    a, b = stores
    _, _, busy = await one_job(a, database, "http://127.0.0.1:12", "/release", "sensor.release")
    claimed = await a.claim(T0, 30, "actions/0", busy)
    assert claimed is not None
    assert await a.release(claimed, T0 + timedelta(seconds=1)) is True
    again = await b.claim(T0 + timedelta(seconds=1), 30, "actions/1", busy)
    assert again is not None and again.delivery_id == claimed.delivery_id


async def test_an_event_postgresql_refuses_is_skipped_and_its_batch_mates_get_jobs(
    stores: tuple[PostgresActionStore, PostgresActionStore], database: str
) -> None:
    """Another producer's NUL in a string: jsonb refuses the job's copy of the event. That
    event is skipped and logged (the event handler dead-letters it); the batch's other
    events still get their jobs, and the consumer does not crash-loop on the batch."""
    a, _ = stores
    url = "http://127.0.0.1:9/nul"
    kind = "nul.test"  # rules of the module's other tests match sensor.reading
    rule_id = new_id()
    await a.create(rule_id, RuleDraft("r", kind, "", Target(url, {}, (SECRET,))), T0)
    sink = PostgresJobSink(database)
    planner = JobPlanner(sink, FixedClock(), new_id, dedupe_window=0)
    bad = Event(new_id(), kind, "dev-nul", T0, T0, {"unit": "C\x00", "value": 1})
    good = Event(new_id(), kind, "dev-ok", T0, T0, {"unit": "C", "value": 2})
    try:
        created = await asyncio.to_thread(planner.handle, [encode_event(bad), encode_event(good)])
    finally:
        sink.close()
    assert created == 1
    with psycopg.connect(database) as conn:
        rows = conn.execute(
            "SELECT event_id::text FROM actions.deliveries WHERE rule_id = %s", (rule_id,)
        ).fetchall()
    assert [r[0] for r in rows] == [good.event_id]
    assert planner.skipped == 1
