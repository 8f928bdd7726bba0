from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Sequence
from typing import Any

import grpc
import pytest

from services.core.errors import InvalidInput, Unavailable
from services.mqtt.access import Access, Identity, User
from services.mqtt.gateway import Gateway, GatewayStopped, Limits, Publish
from services.mqtt.ingest_client import GrpcIngestor
from services.mqtt.ports import EventRequest, Outcome

DEV = Identity(None, "c1")


class FakeIngestor:
    """Commits events in memory; can be made unreachable, or slow to answer."""

    def __init__(self) -> None:
        self.calls: list[list[EventRequest]] = []
        self.principals: list[str] = []
        self.committed: dict[tuple[str, str], str] = {}  # (principal, key) -> event id
        self.down = False
        self.commit_then_fail = 0  # commit, then lose the answer (ambiguous failure)
        self.gate: asyncio.Event | None = None
        self.ids = itertools.count(1)

    async def ingest(self, events: Sequence[EventRequest], principal: str) -> list[Outcome]:
        self.calls.append(list(events))
        self.principals.append(principal)
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise Unavailable("ingestion down")
        out = []
        for e in events:
            if e.event_type == "bad":
                out.append(Outcome("rejected", error="event_type 'bad' must be dot notation"))
            elif (principal, e.idempotency_key) in self.committed:
                out.append(Outcome("duplicate", self.committed[principal, e.idempotency_key]))
            else:
                self.committed[principal, e.idempotency_key] = f"ev-{next(self.ids)}"
                out.append(Outcome("accepted", self.committed[principal, e.idempotency_key]))
        if self.commit_then_fail:
            self.commit_then_fail -= 1
            raise Unavailable("connection lost after commit")
        return out


class FakeFeedback:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def send(self, topic: str, body: dict[str, Any]) -> None:
        self.sent.append((topic, body))


keys = itertools.count()


def gateway(ingestor: FakeIngestor, feedback: FakeFeedback, **limits: Any) -> Gateway:
    gw = Gateway(
        ingestor,
        feedback,
        Access({}, allow_anonymous=True),
        lambda: f"key-{next(keys)}",
        Limits(retry_initial=0.001, retry_max=0.01, **limits),
    )
    gw.start()
    return gw


def reading(
    agg: str = "d1", value: float = 1.0, packet_id: int | None = 1, qos: int = 1
) -> Publish:
    body = json.dumps({"value": value, "unit": "C"}).encode()
    return Publish(DEV, f"cornjacket/v1/events/sensor.reading/{agg}", body, qos, packet_id)


async def test_a_publish_is_settled_only_after_ingestion_committed_it() -> None:
    ing, fb = FakeIngestor(), FakeFeedback()
    ing.gate = asyncio.Event()
    gw = gateway(ing, fb)
    task = asyncio.create_task(gw.handle(reading()))
    await asyncio.sleep(0.01)
    assert not task.done() and not ing.committed
    ing.gate.set()
    await task
    assert len(ing.committed) == 1
    await gw.stop(1)


async def test_concurrent_publishes_share_calls_and_keep_their_order() -> None:
    ing, fb = FakeIngestor(), FakeFeedback()
    ing.gate = asyncio.Event()
    gw = gateway(ing, fb)
    first = asyncio.create_task(gw.handle(reading(value=0, packet_id=0)))
    await asyncio.sleep(0.01)  # the first call is in flight; the rest queue up
    done: list[int] = []

    async def one(i: int) -> None:
        await gw.handle(reading(value=i, packet_id=i))
        done.append(i)

    rest = [asyncio.create_task(one(i)) for i in range(1, 20)]
    await asyncio.sleep(0.01)
    ing.gate.set()
    await asyncio.gather(first, *rest)
    assert done == list(range(1, 20))
    assert [len(c) for c in ing.calls] == [1, 19]
    values = [e.payload["value"] for c in ing.calls for e in c]
    assert values == list(range(20))
    await gw.stop(1)


async def test_unreachable_ingestion_is_retried_with_the_same_keys_and_no_duplicates() -> None:
    ing, fb = FakeIngestor(), FakeFeedback()
    ing.down = True
    gw = gateway(ing, fb)
    task = asyncio.create_task(gw.handle(reading()))
    await asyncio.sleep(0.05)
    assert not task.done() and len(ing.calls) > 1
    ing.down = False
    ing.commit_then_fail = 1  # the next call commits but its answer is lost
    await task
    assert len(ing.committed) == 1
    assert len({c[0].idempotency_key for c in ing.calls}) == 1
    assert gw.counters.duplicates == 1  # the retry found the committed event
    await gw.stop(1)


async def test_refusals_are_explained_on_the_error_topic_and_keep_order() -> None:
    ing, fb = FakeIngestor(), FakeFeedback()
    gw = gateway(ing, fb, max_message_bytes=100)
    order: list[str] = []

    async def run(name: str, pub: Publish) -> None:
        await gw.handle(pub)
        order.append(name)

    await asyncio.gather(
        run("ok", reading(packet_id=1)),
        run("json", Publish(DEV, "cornjacket/v1/events/a.b/d", b"{", 1, 2)),
        run("topic", Publish(DEV, "elsewhere/x", b"{}", 1, 3)),
        run("big", Publish(DEV, "cornjacket/v1/events/a.b/d", b"{}" + b" " * 200, 1, 4)),
        run("bad", Publish(DEV, "cornjacket/v1/events/bad/d", b"{}", 1, 5)),
    )
    assert order == ["ok", "json", "topic", "big", "bad"]
    codes = [(b["packet_id"], b["code"]) for t, b in fb.sent if t.endswith("/c1/errors")]
    assert codes == [(2, "invalid_json"), (3, "unknown_topic"), (4, "too_large"), (5, "rejected")]
    assert gw.counters.rejected == {
        "invalid_json": 1,
        "unknown_topic": 1,
        "too_large": 1,
        "rejected": 1,
    }
    assert len(ing.committed) == 1
    await gw.stop(1)


async def test_ack_topic_carries_event_ids_when_asked() -> None:
    ing, fb = FakeIngestor(), FakeFeedback()
    gw = gateway(ing, fb)
    body = json.dumps(
        {
            "events": [
                {"event_type": "sensor.reading", "aggregate_id": "a", "payload": {"value": 1}},
                {"event_type": "bad", "aggregate_id": "a", "payload": {}},
            ],
            "ack": True,
        }
    ).encode()
    await gw.handle(Publish(DEV, "cornjacket/v1/batch", body, 1, 9))
    acks = [b for t, b in fb.sent if t == "cornjacket/v1/clients/c1/acks"]
    assert acks[0]["packet_id"] == 9
    assert acks[0]["results"][0]["status"] == "accepted"
    assert acks[0]["results"][0]["event_id"] == next(iter(ing.committed.values()))
    assert acks[0]["results"][1]["status"] == "rejected"
    await gw.stop(1)


async def test_acl_is_checked_per_event_of_a_batch() -> None:
    ing, fb = FakeIngestor(), FakeFeedback()
    user = User("dev-1", "", publish=("cornjacket/v1/events/+/%u",))
    gw = Gateway(ing, fb, Access({"dev-1": user}, allow_anonymous=False), lambda: "k")
    gw.start()
    me = Identity("dev-1", "c1")
    body = json.dumps(
        {
            "events": [
                {"event_type": "a.b", "aggregate_id": "dev-1", "payload": {}},
                {"event_type": "a.b", "aggregate_id": "dev-2", "payload": {}},
            ]
        }
    ).encode()
    await gw.handle(Publish(me, "cornjacket/v1/batch", body, 1, 1))
    await gw.handle(Publish(me, "cornjacket/v1/envelopes/a.b/dev-2", b'{"payload": {}}', 1, 2))
    assert not ing.committed
    errors = [b["message"] for t, b in fb.sent if t.endswith("/errors")]
    assert errors == [
        "events[1]: you may not publish events to 'cornjacket/v1/events/a.b/dev-2'",
        "you may not publish events to 'cornjacket/v1/events/a.b/dev-2'",
    ]
    await gw.stop(1)


async def test_stopping_leaves_unsettled_publishes_unacknowledged() -> None:
    ing, fb = FakeIngestor(), FakeFeedback()
    ing.down = True
    gw = gateway(ing, fb)
    task = asyncio.create_task(gw.handle(reading()))
    await asyncio.sleep(0.02)
    await gw.stop(0.05)
    with pytest.raises(GatewayStopped):
        await task
    with pytest.raises(GatewayStopped):
        await gw.handle(reading(packet_id=2))


async def test_qos0_is_dropped_and_counted_when_the_queue_is_full() -> None:
    ing, fb = FakeIngestor(), FakeFeedback()
    ing.gate = asyncio.Event()
    gw = gateway(ing, fb, max_inflight=2)
    for i in range(5):
        gw.submit(reading(packet_id=None, qos=0, value=i))
    await asyncio.sleep(0.01)
    ing.gate.set()
    await asyncio.sleep(0.05)
    assert gw.counters.dropped_qos0 > 0
    assert len(ing.committed) + gw.counters.dropped_qos0 == 5
    await gw.stop(1)


async def test_each_users_events_go_to_ingestion_as_that_user() -> None:
    # Idempotency keys are scoped by principal: two users' equal keys are two events.
    ing, fb = FakeIngestor(), FakeFeedback()
    ing.gate = asyncio.Event()
    users = {u: User(u, "") for u in ("a", "b")}
    gw = Gateway(ing, fb, Access(users, allow_anonymous=True), lambda: f"key-{next(keys)}")
    gw.start()
    first = asyncio.create_task(gw.handle(reading(packet_id=0)))
    await asyncio.sleep(0.01)  # in flight; the next two queue up and share one batch

    def envelope(user: str, value: int) -> Publish:
        body = json.dumps({"payload": {"value": value}, "idempotency_key": "same", "ack": True})
        topic = f"cornjacket/v1/envelopes/sensor.reading/{user}"
        return Publish(Identity(user, user), topic, body.encode(), 1, value)

    pubs = [asyncio.create_task(gw.handle(envelope(u, i))) for i, u in enumerate(["a", "b"])]
    await asyncio.sleep(0.01)
    ing.gate.set()
    await asyncio.gather(first, *pubs)
    assert ing.principals == ["mqtt-anonymous", "mqtt:a", "mqtt:b"]
    acks = [body["results"][0] for _, body in fb.sent]
    assert [a["status"] for a in acks] == ["accepted", "accepted"]
    assert acks[0]["event_id"] != acks[1]["event_id"]
    await gw.stop(1)


@pytest.mark.parametrize(
    ("code", "raised"),
    [
        (grpc.StatusCode.PERMISSION_DENIED, InvalidInput),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, Unavailable),
    ],
)
async def test_ingestion_errors_do_not_name_its_address(
    code: grpc.StatusCode, raised: type[Exception], caplog: pytest.LogCaptureFixture
) -> None:
    # A refused call's message reaches the device's errors topic: it says what happened
    # (the code's name), never where ingestion runs or its own words; the log has both.
    class Refusing:
        async def IngestEvents(self, *args: Any, **kw: Any) -> Any:
            raise grpc.aio.AioRpcError(
                code, grpc.aio.Metadata(), grpc.aio.Metadata(), "quota of 10.9.8.7 spent"
            )

    ingestor = GrpcIngestor("10.9.8.7:50051", 1.0)
    ingestor._stub = Refusing()  # type: ignore[assignment]
    try:
        with pytest.raises(raised) as e:
            await ingestor.ingest([EventRequest("a.b", "x", {}, "k1")], "mqtt:dev-1")
    finally:
        await ingestor.close()
    assert str(e.value) == f"rejected by ingestion ({code.name})"
    assert any("10.9.8.7" in getattr(r, "error", "") for r in caplog.records)
