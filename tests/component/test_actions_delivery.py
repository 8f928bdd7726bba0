"""Delivery workers against real PostgreSQL and real HTTP: hostile replies, requests httpx
cannot make, and leases that run out, each ending in what the database records.

The endpoint is a small raw-socket HTTP server in this module (it must send what
tests/webhook_receiver.py cannot: a NUL in the body, a 50 MB body, a Retry-After of
'\u00b2'). Time is a FixedClock moved by the test; every wait is on an event.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
import psycopg_pool
import pytest
import uuid_utils
from prometheus_client import REGISTRY
from psycopg.rows import DictRow, dict_row

from services.actions import policy as pol
from services.actions.delivery import DeliveryWorkers, HttpxSender, webhook_body
from services.actions.ports import DELIVERED, PENDING, Delivery, Job, NewJob
from services.actions.rules import RuleDraft, Target, endpoint_of
from services.actions.secretbox import SecretBox
from services.actions.store import PostgresActionStore, PostgresJobSink
from services.core.clock import FixedClock
from services.infra import migrations
from services.infra.postgres import open_pool

pytestmark = pytest.mark.component

BOX = SecretBox([b"k" * 32])  # the signing secrets are sealed at rest

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SECRET = "whsec_" + base64.b64encode(b"h" * 32).decode()
POLICY = pol.Policy(timeout=30, jitter=0.0, rate_limit_per_minute=0, breaker_threshold=100)
BIG = 50 * 1024 * 1024


@dataclass
class Hostile:
    """One scripted reply per path; records what it was sent and how much it wrote."""

    replies: dict[str, Callable[[asyncio.StreamWriter], Awaitable[None]]] = field(
        default_factory=dict
    )
    arrived: dict[str, asyncio.Event] = field(default_factory=dict)
    done: dict[str, asyncio.Event] = field(default_factory=dict)
    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    written: dict[str, int] = field(default_factory=dict)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        path = ""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            self.requests.append(path)
            self.arrived.setdefault(path, asyncio.Event()).set()
            if path in self.gates:
                await self.gates[path].wait()
            await self.replies[path](writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away: what matters is how much was written by then
        finally:
            writer.close()
            self.done.setdefault(path, asyncio.Event()).set()


def reply(
    status: str, body: bytes, *headers: bytes
) -> Callable[[asyncio.StreamWriter], Awaitable[None]]:
    async def send(writer: asyncio.StreamWriter) -> None:
        head = [f"HTTP/1.1 {status}".encode(), *headers]
        head += [f"content-length: {len(body)}".encode(), b"connection: close"]
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        await writer.drain()

    return send


def streamed_500(server: Hostile, path: str) -> Callable[[asyncio.StreamWriter], Awaitable[None]]:
    async def send(writer: asyncio.StreamWriter) -> None:
        writer.write(
            f"HTTP/1.1 500 Oops\r\ncontent-length: {BIG}\r\nconnection: close\r\n\r\n".encode()
        )
        chunk = b"A" * 65536
        server.written[path] = 0
        while server.written[path] < BIG:
            writer.write(chunk)
            await writer.drain()  # raises once the client has closed the connection
            server.written[path] += len(chunk)

    return send


@pytest.fixture
async def hostile() -> AsyncIterator[Hostile]:
    server = Hostile()
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = srv.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        srv.close()


@pytest.fixture
async def store(database: str) -> AsyncIterator[PostgresActionStore]:
    await asyncio.to_thread(migrations.apply, database, "actions")
    async with open_pool(database, max_size=4, acquire_timeout=5, name="hostile") as pool:
        yield PostgresActionStore(pool, BOX)


@pytest.fixture
async def sender() -> AsyncIterator[HttpxSender]:
    # The local endpoints stand in for public ones: their response bodies are kept as a
    # public endpoint's would be (an internal target's are not: test_action_egress.py).
    s = HttpxSender(internal_bodies=True)
    try:
        yield s
    finally:
        await s.close()


def workers(store: PostgresActionStore, sender: HttpxSender, clock: FixedClock) -> DeliveryWorkers:
    return DeliveryWorkers(
        store,
        sender,
        clock,
        POLICY,
        workers=1,
        poll_interval=0.1,
        endpoint_concurrency=1,
        name="hostile",
        rng=random.Random(1),
    )


async def one_job(
    database: str, store: PostgresActionStore, url: str, headers: dict[str, str] | None = None
) -> str:
    """A rule (saved as a rule written before today's validation would be) and one job,
    the only pending one in this module's database: earlier tests' jobs are discarded so a
    claim takes this one (a new server may reuse an old one's port, its endpoint)."""
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("UPDATE actions.deliveries SET status = 'discarded' WHERE status = 'pending'")
    rule_id = str(uuid_utils.uuid7())
    target = Target(url, headers or {}, (SECRET,))
    await store.create(rule_id, RuleDraft("hostile", "sensor.reading", "", target), T0)
    event_id = str(uuid_utils.uuid7())
    delivery_id = str(uuid_utils.uuid7())
    sink = PostgresJobSink(database)
    try:
        new = NewJob(delivery_id, rule_id, event_id, "sensor.reading", url, {"event_id": event_id})
        assert await asyncio.to_thread(sink.enqueue, [new], T0, 0) == 1
    finally:
        sink.close()
    return delivery_id


async def claim(store: PostgresActionStore, database: str, delivery_id: str, at: datetime) -> Job:
    job = await store.claim(at, POLICY.lease, "hostile/0")
    assert job is not None and job.delivery_id == delivery_id
    return job


async def deliver_once(
    store: PostgresActionStore, sender: HttpxSender, database: str, delivery_id: str
) -> Delivery:
    """One worker pass over the job, as the worker loop runs it; then what was recorded."""
    clock = FixedClock(T0)
    job = await claim(store, database, delivery_id, T0)
    await workers(store, sender, clock)._process(job, "hostile/0", asyncio.Event())
    d = await store.get_delivery(delivery_id)
    assert d is not None
    return d


def retried_after_backoff(d: Delivery, outcome: str) -> None:
    """One recorded attempt, the job pending again after the first backoff step: the job
    is on its way through backoff to the DLQ, not back after its lease."""
    assert [a.outcome for a in d.attempts] == [outcome], d
    assert d.status == PENDING and d.attempt_count == 1
    assert d.next_attempt_at == T0 + timedelta(seconds=POLICY.backoff[0])


async def test_a_nul_in_the_response_body_is_recorded_cleaned(
    hostile: Hostile, store: PostgresActionStore, sender: HttpxSender, database: str
) -> None:
    hostile.replies["/nul"] = reply("500 Oops", b"bad\x00thing \x1b[31mred\r\n\tend")
    delivery_id = await one_job(database, store, hostile.url("/nul"))
    d = await deliver_once(store, sender, database, delivery_id)
    retried_after_backoff(d, pol.FAILURE)
    assert d.attempts[0].error == "HTTP 500: bad thing [31mred end"
    assert d.last_error == d.attempts[0].error


async def test_a_huge_response_body_is_not_read(
    hostile: Hostile, store: PostgresActionStore, sender: HttpxSender, database: str
) -> None:
    hostile.replies["/huge"] = streamed_500(hostile, "/huge")
    delivery_id = await one_job(database, store, hostile.url("/huge"))
    d = await deliver_once(store, sender, database, delivery_id)
    retried_after_backoff(d, pol.FAILURE)
    assert d.attempts[0].error == "HTTP 500: " + "A" * 200
    # The sender closed the connection after a few KB: the server's writes failed long
    # before 50 MB (only socket buffers' worth got through).
    await hostile.done.setdefault("/huge", asyncio.Event()).wait()
    assert hostile.written["/huge"] < BIG // 2, hostile.written


async def test_a_retry_after_that_only_looks_numeric_falls_back_to_the_backoff(
    hostile: Hostile, store: PostgresActionStore, sender: HttpxSender, database: str
) -> None:
    hostile.replies["/sup"] = reply("503 Busy", b"busy", b"Retry-After: \xb2")  # latin-1 '\xb2'
    delivery_id = await one_job(database, store, hostile.url("/sup"))
    d = await deliver_once(store, sender, database, delivery_id)
    retried_after_backoff(d, pol.FAILURE)
    assert d.attempts[0].status_code == 503


@pytest.mark.parametrize(
    ("url", "headers", "error"),
    [
        ("/ascii", {"X-Key": "caf\u00e9"}, "UnicodeEncodeError"),
        ("http://\u2603.example/x", {}, "InvalidURL"),
        ("http://999.1.1.1/x", {}, "InvalidURL"),
    ],
)
async def test_a_request_httpx_cannot_make_is_a_recorded_attempt(
    hostile: Hostile,
    store: PostgresActionStore,
    sender: HttpxSender,
    database: str,
    url: str,
    headers: dict[str, str],
    error: str,
) -> None:
    target = hostile.url(url) if url.startswith("/") else url
    delivery_id = await one_job(database, store, target, headers)
    d = await deliver_once(store, sender, database, delivery_id)
    retried_after_backoff(d, pol.INVALID_REQUEST)
    assert error in d.attempts[0].error
    # Not the endpoint's fault: its breaker is untouched.
    assert [b for b in await store.breakers() if b.endpoint == endpoint_of(target)] == []
    assert hostile.requests == []


def leases_lost() -> float:
    return REGISTRY.get_sample_value("cornjacket_webhook_leases_lost_total") or 0.0


async def test_a_lease_lost_before_the_send_sends_nothing(
    hostile: Hostile, store: PostgresActionStore, sender: HttpxSender, database: str
) -> None:
    hostile.replies["/late"] = reply("200 OK", b"ok")
    delivery_id = await one_job(database, store, hostile.url("/late"))
    clock = FixedClock(T0)
    first = await claim(store, database, delivery_id, T0)
    # The steps before the send took longer than the lease; another worker (same name,
    # another replica) claimed the job meanwhile.
    clock.advance(timedelta(seconds=POLICY.lease + 1))
    second = await claim(store, database, delivery_id, clock.now())
    before = leases_lost()
    await workers(store, sender, clock)._process(first, "hostile/0", asyncio.Event())
    assert hostile.requests == [] and leases_lost() == before + 1
    # The holder delivers it, once.
    await workers(store, sender, clock)._process(second, "hostile/0", asyncio.Event())
    d = await store.get_delivery(delivery_id)
    assert d is not None and d.status == DELIVERED and len(d.attempts) == 1
    assert hostile.requests == ["/late"]


async def test_a_result_recorded_after_the_lease_was_taken_over_writes_nothing(
    hostile: Hostile, store: PostgresActionStore, sender: HttpxSender, database: str
) -> None:
    hostile.replies["/slow"] = reply("410 Gone", b"gone")
    hostile.gates["/slow"] = asyncio.Event()
    delivery_id = await one_job(database, store, hostile.url("/slow"))
    clock = FixedClock(T0)
    first = await claim(store, database, delivery_id, T0)
    before = leases_lost()
    sending = asyncio.create_task(
        workers(store, sender, clock)._process(first, "hostile/0", asyncio.Event())
    )
    arrived = hostile.arrived.setdefault("/slow", asyncio.Event())
    await arrived.wait()
    # While the endpoint holds the request, the lease runs out and another claim takes it.
    clock.advance(timedelta(seconds=POLICY.lease + 1))
    second = await claim(store, database, delivery_id, clock.now())
    assert second.lease_token != first.lease_token
    hostile.gates["/slow"].set()
    await sending
    assert leases_lost() == before + 1
    d = await store.get_delivery(delivery_id)
    assert d is not None and (d.status, d.attempts) == (PENDING, [])
    rule = await store.get(d.rule_id)
    assert rule is not None and rule.enabled, "the stale 410 did not disable the rule"


async def test_the_webhook_timestamp_is_utc_whatever_the_session_time_zone(
    store: PostgresActionStore, database: str
) -> None:
    delivery_id = await one_job(database, store, "http://127.0.0.1:9/tz")
    pool: psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[DictRow]] = (
        psycopg_pool.AsyncConnectionPool(
            database,
            connection_class=psycopg.AsyncConnection[DictRow],
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "options": "-c TimeZone=Asia/Kolkata",
            },
            min_size=1,
            max_size=1,
            open=False,
        )
    )
    await pool.open()
    try:
        job = await claim(PostgresActionStore(pool, BOX), database, delivery_id, T0)
    finally:
        await pool.close()
    assert job.created_at.utcoffset() == timedelta(hours=5, minutes=30), "the session's zone"
    assert json.loads(webhook_body(job))["timestamp"] == "2026-05-01T12:00:00Z"
