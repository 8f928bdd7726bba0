from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import ConfigEntry, ConfigResource  # type: ignore[attr-defined]

from services.core import json_text
from services.core.errors import ConfigError, InvalidInput, Unavailable
from services.core.events import Event, Metadata, PartlyPublished, Publication
from services.infra.codec import encode_event
from services.infra.kafka import (
    BATCH_BYTES,
    RECORD_BATCH_OVERHEAD,
    KafkaPublisher,
    _Delivery,
    _raise_low_limits,
    message_limit,
)
from services.ingestion.relay import Relay
from tests.unit.fakes import MemoryPublisher, MemoryRelayStore

T = datetime(2026, 1, 1, tzinfo=UTC)


def ev(n: int) -> Event:
    return Event(f"id-{n}", "sensor.reading", f"d{n}", T, T, {"value": n, "unit": "C"})


def relay(store: MemoryRelayStore, pub: MemoryPublisher, batch: int = 10) -> Relay:
    return Relay(
        store,
        pub,
        batch_size=batch,
        max_retries=2,
        worker_count=1,
        poll_interval=1,
        publish_timeout=30,
    )


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


def agg_ev(aggregate: str, n: int) -> Event:
    return Event(f"{aggregate}-{n}", "sensor.reading", aggregate, T, T, {"value": n, "unit": "C"})


def bus_order(pub: MemoryPublisher, aggregate: str) -> list[int]:
    return [e.payload["value"] for e in pub.sent if e.aggregate_id == aggregate]


async def test_a_refused_event_is_set_aside_at_once_never_sent_after_its_batch_mates() -> None:
    """Issue 16 review: a refusal used to be retried with the event alone, after its
    batch-mates were acknowledged (bus order 1, 2, 0). A refusal now concerns the event
    alone (the topics' limits cover the producer's batches, checked at start): it is a
    poison row at once and nothing of its aggregate is published after it."""
    store, pub = MemoryRelayStore(), MemoryPublisher()
    for n in range(3):
        store.add(agg_ev("dev-1", n))
    pub.refuse["dev-1-0"] = "cannot produce, refused for good: Message size too large"
    r = relay(store, pub)
    assert await r.step() == 3
    assert bus_order(pub, "dev-1") == [1, 2]  # never 0 after them
    assert pub.calls == 1  # no send-alone retry
    assert list(store.poison) == ["dev-1-0"] and store.outbox == {} and r.poisoned == 1
    assert [p.event_id for p in store.publications] == ["dev-1-1", "dev-1-2"]


async def test_a_partial_failure_keeps_only_the_failed_aggregate_from_its_failed_row_on() -> None:
    """Issue 16 review: one aggregate that keeps failing transiently (its partition's leader
    down) held back its co-claimed rows for good and had them published again on every
    retry. Now the acknowledged rows of every other aggregate are recorded and deleted; the
    failed row and the later rows of its aggregate (even acknowledged ones) stay, in order."""
    store, pub = MemoryRelayStore(), MemoryPublisher()
    store.add(agg_ev("bad", 0))
    for n in range(3):
        store.add(agg_ev("ok", n))
    store.add(agg_ev("early", 0))
    store.add(agg_ev("bad", 1))
    pub.fail_events.add("bad-0")  # bad-1 is acknowledged, but comes after a failed row
    r = relay(store, pub)
    with pytest.raises(Unavailable):
        await r.step()
    assert sorted(store.outbox) == ["bad-0", "bad-1"]
    assert all(row.retry_count == 1 for row in store.outbox.values())
    assert sorted(p.event_id for p in store.publications) == ["early-0", "ok-0", "ok-1", "ok-2"]
    assert store.poison == {} and r.published == 4
    # It keeps failing: it is retried, counted and reported, never set aside (an outage
    # must not poison events), and its batch-mates are never sent again.
    pub.fail_events.add("bad-1")
    for _ in range(50):
        store.add(agg_ev("ok", 100 + _))
        with pytest.raises(Unavailable):
            await r.step()
    copies = Counter(e.event_id for e in pub.sent)
    assert max(copies[f"ok-{n}"] for n in range(3)) == 1
    assert copies["bad-1"] == 1 and "bad-0" not in copies
    assert sorted(store.outbox) == ["bad-0", "bad-1"] and store.poison == {}
    assert store.outbox["bad-0"].retry_count == 51
    assert len(store.publications) == 4 + 50
    # The partition is back: the aggregate goes out in order, after its earlier copy.
    pub.fail_events.clear()
    assert await r.step() == 2
    assert bus_order(pub, "bad") == [1, 0, 1]  # last copies in order: 0 before 1
    assert store.outbox == {}


async def test_a_publish_that_never_answers_is_bounded_and_rolled_back() -> None:
    """Issue 16 review: only the server's idle_in_transaction_session_timeout bounded a
    batch; past it the slot locks were freed while the messages were still in flight."""
    store = MemoryRelayStore()
    store.add(ev(1))
    never = asyncio.Event()

    class Silent(MemoryPublisher):
        async def publish(self, events: Sequence[Event]) -> list[Publication | InvalidInput]:
            await never.wait()
            raise AssertionError("unreachable")

    r = Relay(
        store,
        Silent(),
        batch_size=10,
        max_retries=2,
        worker_count=1,
        poll_interval=1,
        publish_timeout=0.05,
    )
    with pytest.raises(Unavailable, match="publish"):
        await r.step()
    # Rolled back: the row is kept as it was, nothing deleted or recorded.
    assert list(store.outbox) == ["id-1"] and store.outbox["id-1"].retry_count == 0
    assert store.publications == [] and store.poison == {}


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


async def test_delivery_reports_hold_back_what_the_broker_refuses_and_keep_every_result() -> None:
    """The broker refuses a whole record batch, which may hold other messages: its refusal
    is held back (retried), never a poison row; and a failure no longer hides what was
    acknowledged in the same call (the relay deletes those rows)."""
    loop = asyncio.get_running_loop()
    refused = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
    d = _Delivery([ev(0), ev(1)], loop)
    d.delivered(0, None, _Msg())
    d.delivered(1, refused, None)
    with pytest.raises(PartlyPublished) as caught:
        await d.done
    ok, held = caught.value.results
    assert isinstance(ok, Publication) and ok.offset == 7
    assert isinstance(held, Unavailable) and "record batch" in str(held)
    d = _Delivery([ev(0), ev(1)], loop)
    d.delivered(0, None, _Msg())
    d.delivered(1, KafkaError(KafkaError._MSG_TIMED_OUT), None)
    with pytest.raises(PartlyPublished) as caught:
        await d.done
    ok, lost = caught.value.results
    assert isinstance(ok, Publication) and isinstance(lost, Unavailable)


class _Future:
    def __init__(self, value: object = None, error: Exception | None = None) -> None:
        self.value, self.error = value, error

    def result(self, timeout: float | None = None) -> object:
        if self.error:
            raise self.error
        return self.value


class _LowLimitAdmin:
    """A broker whose topic keeps the 1 MiB default and refuses AlterConfigs (no ACL)."""

    def describe_configs(
        self, resources: list[ConfigResource], **kwargs: object
    ) -> dict[object, _Future]:
        entry = ConfigEntry("max.message.bytes", "1048576")
        return {r: _Future({"max.message.bytes": entry}) for r in resources}

    def incremental_alter_configs(self, changes: list[ConfigResource]) -> dict[object, _Future]:
        return {c: _Future(error=RuntimeError("TOPIC_AUTHORIZATION_FAILED")) for c in changes}


def test_a_topic_limit_below_the_producers_batches_refuses_to_start() -> None:
    """A topic limit below the producer's record batches let the broker refuse a batch of
    several events as a whole; ingestion used to warn and go on. Now it cannot start."""
    needed = message_limit(4 * 1024 * 1024)
    with pytest.raises(ConfigError) as caught:
        _raise_low_limits(_LowLimitAdmin(), ["sensor-events"], needed, 1)  # type: ignore[arg-type]
    text = str(caught.value)
    assert "sensor-events" in text and "max.message.bytes=1048576" in text
    assert str(needed) in text and "batch.size" in text
    # The producer the relay builds fits the limit it asks for, batches included.
    assert message_limit(64 * 1024) - RECORD_BATCH_OVERHEAD >= BATCH_BYTES
