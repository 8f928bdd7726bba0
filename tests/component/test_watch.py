"""WatchService.WatchEvents (issue 19) as a real query process reading the real broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from confluent_kafka import Producer
from cornjacket.v1 import watch_pb2, watch_pb2_grpc

from services.cli.processes import free_port
from services.core.events import ALL_TOPICS, Event, topic_for
from services.infra import migrations
from services.infra.codec import encode_event
from services.infra.kafka import ensure_topics
from services.query.watch import Position
from tests.support import eventually, service_process, unique

pytestmark = pytest.mark.component

T = datetime(2026, 12, 1, tzinfo=UTC)
MAX_WATCHERS = 2


@pytest.fixture(scope="module")
def watch(
    database: str, broker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[watch_pb2_grpc.WatchServiceStub]:
    migrations.apply(database, "eventhandler")
    ensure_topics(broker.bootstrap, list(ALL_TOPICS), partitions=2)
    port = free_port()
    env = {
        "CJ_QUERY_DATABASE_URL": database,
        "CJ_QUERY_PORT": str(port),
        "CJ_REDPANDA_BROKERS": broker.bootstrap,
        "CJ_WATCH_MAX_WATCHERS": str(MAX_WATCHERS),
    }
    with service_process("query", env, tmp_path_factory.mktemp("w"), f"127.0.0.1:{port}"):
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        yield watch_pb2_grpc.WatchServiceStub(channel)
        channel.close()


@pytest.fixture(scope="module")
def producer(broker: Any) -> Iterator[Producer]:
    p = Producer({"bootstrap.servers": broker.bootstrap})
    yield p
    p.flush(10)


def send(producer: Producer, event_type: str, aggregate_id: str, n: int) -> str:
    event_id = str(uuid.uuid4())
    event = Event(event_id, event_type, aggregate_id, T, T, {"n": n})
    producer.produce(topic_for(event_type), encode_event(event), key=aggregate_id.encode())
    producer.flush(10)
    return event_id


def opened(
    watch: watch_pb2_grpc.WatchServiceStub, request: watch_pb2.WatchEventsRequest
) -> tuple[Any, watch_pb2.WatchEventsResponse]:
    """A new stream and its first message. The server sees a cancelled stream's end a moment
    after the client cancels it, so its slot may still be taken: wait for a slot (the
    RESOURCE_EXHAUSTED answer says "retry later"), as a client would."""

    def attempt() -> tuple[Any, watch_pb2.WatchEventsResponse] | None:
        stream = watch.WatchEvents(request, timeout=30)
        try:
            return stream, next(stream)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
            return None

    return eventually(attempt, what="a free watcher slot")


def refused(
    watch: watch_pb2_grpc.WatchServiceStub, request: watch_pb2.WatchEventsRequest
) -> grpc.RpcError:
    """The error a new stream ends with, once a watcher slot is free (see ``opened``)."""

    def attempt() -> grpc.RpcError | None:
        try:
            next(watch.WatchEvents(request, timeout=30))
        except grpc.RpcError as e:
            return None if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED else e
        raise AssertionError("the stream was accepted")

    return eventually(attempt, what="a free watcher slot")


def events(stream: Any, count: int) -> list[watch_pb2.WatchEventsResponse]:
    got = []
    for msg in stream:
        if msg.WhichOneof("item") == "event":
            got.append(msg)
            if len(got) == count:
                return got
    raise AssertionError(f"stream ended after {len(got)} of {count} events")


def test_events_arrive_filtered_and_resume_without_gap_or_duplicate(
    watch: watch_pb2_grpc.WatchServiceStub, producer: Producer
) -> None:
    device = unique("dev")
    stream, first = opened(
        watch, watch_pb2.WatchEventsRequest(event_type_prefix="sensor.", aggregate_id=device)
    )
    assert first.WhichOneof("item") == "heartbeat" and first.position
    sent = [send(producer, "sensor.reading", device, 0)]
    send(producer, "user.login", device, 1)  # another type: filtered out
    send(producer, "sensor.reading", unique("other"), 2)  # another aggregate
    sent += [send(producer, "sensor.reading", device, n) for n in (3, 4)]
    got = events(stream, 3)
    stream.cancel()
    assert [m.event.event_id for m in got] == sent
    assert got[0].event.aggregate_id == device and got[0].event.payload["n"] == 0

    # resume after the first: exactly the rest, in order (no gap, no duplicate)
    resumed, head = opened(
        watch,
        watch_pb2.WatchEventsRequest(
            event_type_prefix="sensor.", aggregate_id=device, position=got[0].position
        ),
    )
    assert head.WhichOneof("item") == "heartbeat"
    again = events(resumed, 2)
    resumed.cancel()
    assert [m.event.event_id for m in again] == sent[1:]


def test_bad_positions_are_invalid_argument(watch: watch_pb2_grpc.WatchServiceStub) -> None:
    stream, first = opened(watch, watch_pb2.WatchEventsRequest())
    good = first.position
    stream.cancel()

    ahead = Position({tp: o + 1_000_000 for tp, o in Position.decode(good).offsets.items()})
    for position in ("garbage", ahead.encode()):
        err = refused(watch, watch_pb2.WatchEventsRequest(position=position))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
        assert "position" in (err.details() or "")


def test_watchers_are_bounded_by_the_setting(watch: watch_pb2_grpc.WatchServiceStub) -> None:
    held: list[Any] = []

    def hold_one() -> bool:
        stream = watch.WatchEvents(watch_pb2.WatchEventsRequest())
        try:
            next(stream)
        except grpc.RpcError as e:  # a stream of an earlier test not yet released
            assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            return False
        held.append(stream)
        return len(held) == MAX_WATCHERS

    eventually(hold_one, what="every watcher slot held")
    with pytest.raises(grpc.RpcError) as err:
        next(watch.WatchEvents(watch_pb2.WatchEventsRequest()))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "CJ_WATCH_MAX_WATCHERS" in (err.value.details() or "")
    for stream in held:
        stream.cancel()
    # a slot freed is a slot again
    held.clear()
    eventually(hold_one, what="a slot after the others closed")
    held[0].cancel()


def test_a_position_inside_the_buses_last_batch_resumes(
    watch: watch_pb2_grpc.WatchServiceStub, producer: Producer
) -> None:
    # Tansu answers the high watermark with its last record batch's base offset + 1: a
    # position taken after the first event of a batch of three was "past the end of the
    # bus" (INVALID_ARGUMENT) and the client could not resume.
    device = unique("dev")
    stream, _ = opened(
        watch, watch_pb2.WatchEventsRequest(event_type_prefix="sensor.", aggregate_id=device)
    )
    ids = []
    for n in range(3):  # one flush: one record batch
        event_id = str(uuid.uuid4())
        event = Event(event_id, "sensor.reading", device, T, T, {"n": n})
        producer.produce("sensor-events", encode_event(event), key=device.encode())
        ids.append(event_id)
    producer.flush(10)
    got = events(stream, 3)
    stream.cancel()
    assert [m.event.event_id for m in got] == ids
    resumed, head = opened(
        watch,
        watch_pb2.WatchEventsRequest(
            event_type_prefix="sensor.", aggregate_id=device, position=got[0].position
        ),
    )
    assert head.WhichOneof("item") == "heartbeat"
    again = events(resumed, 2)
    resumed.cancel()
    assert [m.event.event_id for m in again] == ids[1:]
