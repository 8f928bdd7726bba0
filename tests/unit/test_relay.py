from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from confluent_kafka import KafkaError

from services.core import json_text
from services.core.errors import InvalidInput, Unavailable
from services.core.events import Event, Metadata, Publication
from services.infra.codec import encode_event
from services.infra.kafka import KafkaPublisher, _Delivery, message_limit
from services.ingestion.relay import Relay
from tests.unit.fakes import MemoryPublisher, MemoryRelayStore

T = datetime(2026, 1, 1, tzinfo=UTC)


def ev(n: int) -> Event:
    return Event(f"id-{n}", "sensor.reading", f"d{n}", T, T, {"value": n, "unit": "C"})


def relay(store: MemoryRelayStore, pub: MemoryPublisher, batch: int = 10) -> Relay:
    return Relay(store, pub, batch_size=batch, max_retries=2, worker_count=1, poll_interval=1)


async def test_step_appends_publishes_and_deletes() -> None:
    store, pub = MemoryRelayStore(), MemoryPublisher()
    for n in range(3):
        store.add(ev(n))
    assert await relay(store, pub).step() == 3
    assert [e.event_id for e in pub.sent] == ["id-0", "id-1", "id-2"]
    assert set(store.event_store) == {"id-0", "id-1", "id-2"}
    assert store.outbox == {}


async def test_publish_failure_keeps_rows_and_counts_retry() -> None:
    store, pub = MemoryRelayStore(), MemoryPublisher()
    store.add(ev(1))
    pub.down = True
    with pytest.raises(Unavailable):
        await relay(store, pub).step()
    assert store.outbox["id-1"].retry_count == 1
    pub.down = False
    assert await relay(store, pub).step() == 1
    assert store.outbox == {} and [e.event_id for e in pub.sent] == ["id-1"]


async def test_unreadable_row_does_not_block_others_and_is_set_aside_after_max_retries() -> None:
    store, pub = MemoryRelayStore(), MemoryPublisher()
    store.add(None, outbox_id="junk")
    store.add(ev(1))
    r = relay(store, pub)  # max_retries=2
    assert await r.step() == 1
    assert list(store.outbox) == ["junk"] and store.outbox["junk"].retry_count == 1
    store.add(ev(2))
    assert await r.step() == 2  # id-2 published, the junk row set aside
    assert [e.event_id for e in pub.sent] == ["id-1", "id-2"]
    assert store.outbox == {} and list(store.poison) == ["junk"]
    assert "unreadable" in store.poison["junk"].error and r.poisoned == 1


async def test_a_failed_batch_holds_back_the_later_rows_of_its_slots() -> None:
    store, pub = MemoryRelayStore(), MemoryPublisher()
    store.add(ev(1))
    store.outbox["id-1"] = store.outbox["id-1"].__class__("id-1", ev(1), 5)  # past max_retries
    store.add(ev(2))
    await relay(store, pub, batch=1).step()
    assert [e.event_id for e in pub.sent] == ["id-1"]  # no overtaking, however often it failed


async def test_an_event_the_bus_refuses_for_good_is_set_aside_and_its_batch_mates_go_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, pub = MemoryRelayStore(), MemoryPublisher()
    for n in range(3):
        store.add(ev(n))
    pub.refuse["id-1"] = "broker refused the message for good: Message size too large"
    r = relay(store, pub)
    assert await r.step() == 3  # rows that left the outbox: two published, one set aside
    assert [e.event_id for e in pub.sent] == ["id-0", "id-2"]
    assert [p.event_id for p in store.publications] == ["id-0", "id-2"]
    assert store.outbox == {}  # batch-mates deleted, the refused row moved aside
    assert list(store.poison) == ["id-1"] and "too large" in store.poison["id-1"].error
    assert set(store.event_store) == {"id-0", "id-1", "id-2"}  # accepted: in the history
    assert r.poisoned == 1
    assert any("set aside" in rec.message for rec in caplog.records)
    # Nothing is held back or sent again.
    assert await r.step() == 0
    assert [e.event_id for e in pub.sent] == ["id-0", "id-2"]


async def test_an_event_refused_only_with_its_batch_mates_is_sent_alone_not_set_aside() -> None:
    """A broker's size refusal can concern the record batch librdkafka built (a topic limit
    below batch.size), not the event: each refused event is tried once on its own before it
    is called a poison row."""
    store, pub = MemoryRelayStore(), MemoryPublisher()
    for n in range(3):
        store.add(ev(n))
    pub.refuse_in_batch.add("id-1")
    r = relay(store, pub)
    assert await r.step() == 3
    assert sorted(e.event_id for e in pub.sent) == ["id-0", "id-1", "id-2"]
    assert store.poison == {} and store.outbox == {} and r.poisoned == 0
    assert sorted(p.event_id for p in store.publications) == ["id-0", "id-1", "id-2"]


async def test_a_broker_outage_is_not_a_poison_row() -> None:
    store, pub = MemoryRelayStore(), MemoryPublisher()
    store.add(ev(1))
    pub.down = True
    r = relay(store, pub)
    for _ in range(4):  # past max_retries: still kept, never set aside
        with pytest.raises(Unavailable):
            await r.step()
    assert store.poison == {} and store.outbox["id-1"].retry_count == 4


def test_the_bus_limit_covers_every_payload_validation_accepts() -> None:
    """The envelope's protobuf can be 5.5x the payload's JSON (a list of one-digit numbers);
    the limit is never below the 1 MiB brokers allow by default (librdkafka batches)."""
    big = 4 * 1024 * 1024
    payload = {"a": [0] * ((big - 10) // 2)}
    assert len(json_text.encode_payload(payload)) <= big
    e = Event(str(uuid.uuid4()), "a" * 60 + ".b", "x" * 256, T, T, payload, Metadata("t" * 128))
    assert len(encode_event(e)) + 2048 < message_limit(big)
    assert message_limit(64 * 1024) == 1024 * 1024


async def test_a_message_over_the_producer_limit_is_refused_for_good_not_unavailable() -> None:
    """librdkafka refuses it in produce() (no broker needed): a per-message error."""
    pub = KafkaPublisher("127.0.0.1:9", max_message_bytes=2000)
    try:
        big = Event(str(uuid.uuid4()), "a.b", "d", T, T, {"s": "x" * 5000})
        (result,) = await pub.publish([big])
    finally:
        pub.close(flush_timeout=0)
    assert isinstance(result, InvalidInput)
    assert "too large" in str(result)


class _Msg:
    def topic(self) -> str:
        return "sensor-events"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 7


async def test_delivery_reports_tell_a_refused_message_from_an_outage() -> None:
    loop = asyncio.get_running_loop()
    refused = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
    d = _Delivery([ev(0), ev(1)], loop)
    d.delivered(0, None, _Msg())
    d.delivered(1, refused, None)
    ok, bad = await d.done
    assert isinstance(ok, Publication) and ok.offset == 7
    assert isinstance(bad, InvalidInput) and "too large" in str(bad).lower()
    # An outage in the same call wins: the whole call is retried (at-least-once).
    d = _Delivery([ev(0), ev(1)], loop)
    d.delivered(0, refused, None)
    d.delivered(1, KafkaError(KafkaError._MSG_TIMED_OUT), None)
    with pytest.raises(Unavailable):
        await d.done
