"""WatchService.WatchProjection (issue 19): a real query process and a real event handler on
the real broker and PostgreSQL. The stream follows the handler's committed offsets, so every
state it sends includes the event that caused it."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
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
from tests.support import eventually, service_process, unique

pytestmark = pytest.mark.component

T = datetime(2026, 12, 1, tzinfo=UTC)
Msg = watch_pb2.WatchProjectionResponse


@pytest.fixture(scope="module")
def watch(
    database: str, broker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[watch_pb2_grpc.WatchServiceStub]:
    migrations.apply(database, "eventhandler")
    ensure_topics(broker.bootstrap, list(ALL_TOPICS), partitions=2)
    group = unique("handler")
    logs = tmp_path_factory.mktemp("wp")
    handler_port, query_port = free_port(), free_port()
    handler_env = {
        "CJ_EVENTHANDLER_DATABASE_URL": database,
        "CJ_EVENTHANDLER_PORT": str(handler_port),
        "CJ_REDPANDA_BROKERS": broker.bootstrap,
        "CJ_EVENTHANDLER_CONSUMER_GROUP": group,
        "CJ_EVENTHANDLER_POLL_TIMEOUT": "100ms",
    }
    query_env = {
        "CJ_QUERY_DATABASE_URL": database,
        "CJ_QUERY_PORT": str(query_port),
        "CJ_REDPANDA_BROKERS": broker.bootstrap,
        "CJ_EVENTHANDLER_CONSUMER_GROUP": group,
        "CJ_WATCH_HEARTBEAT": "1s",
    }
    with (
        service_process("eventhandler", handler_env, logs, f"127.0.0.1:{handler_port}"),
        service_process("query", query_env, logs, f"127.0.0.1:{query_port}"),
    ):
        channel = grpc.insecure_channel(f"127.0.0.1:{query_port}")
        yield watch_pb2_grpc.WatchServiceStub(channel)
        channel.close()


@pytest.fixture(scope="module")
def producer(broker: Any) -> Iterator[Producer]:
    p = Producer({"bootstrap.servers": broker.bootstrap})
    yield p
    p.flush(10)


def send(producer: Producer, device: str, n: int) -> str:
    """A reading whose event time grows with n (the projection keeps the newest)."""
    event_id = str(uuid.uuid4())
    at = T + timedelta(seconds=n)
    event = Event(event_id, "sensor.reading", device, at, at, {"n": n})
    producer.produce(topic_for(event.event_type), encode_event(event), key=device.encode())
    producer.flush(10)
    return event_id


def opened(watch: watch_pb2_grpc.WatchServiceStub, **request: str) -> Any:
    """A stream, once a watcher slot is free (a cancelled stream's slot frees a moment later
    on the server; RESOURCE_EXHAUSTED says retry later)."""

    def attempt() -> Any:
        stream = watch.WatchProjection(watch_pb2.WatchProjectionRequest(**request), timeout=60)
        try:
            first = next(stream)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
            return None
        return stream, first

    return eventually(attempt, what="a free watcher slot")


def until_state(stream: Any, device: str, n: int, first: Msg | None = None) -> Msg:
    """Messages until the device's projection shows reading n (earlier states may come first,
    none may be newer); a stream that ends first fails."""
    messages = [first] if first is not None else []
    msg: Msg
    for msg in itertools.chain(messages, stream):
        assert msg.WhichOneof("item") != "end", msg
        if msg.WhichOneof("item") == "projection" and msg.projection.aggregate_id == device:
            value = msg.projection.state["n"]
            assert isinstance(value, float), msg
            got = int(value)
            assert got <= n, f"state {got} is newer than the {n} sent"
            if got == n:
                return msg
    raise AssertionError(f"the stream ended before state {n}")


def test_one_projection_current_state_first_then_each_change_and_resume(
    watch: watch_pb2_grpc.WatchServiceStub, producer: Producer
) -> None:
    device = unique("dev")
    # Nothing yet: no state, a heartbeat (the current state is complete) with a position.
    stream, first = opened(watch, projection_type="sensor_state", aggregate_id=device)
    assert first.WhichOneof("item") == "heartbeat" and first.position
    first_id = send(producer, device, 1)
    one = until_state(stream, device, 1)
    # the state sent includes the event that caused it: the handler had applied it
    assert one.projection.last_event_id == first_id
    assert one.projection.projection_type == "sensor_state" and one.position
    send(producer, unique("other"), 7)  # another aggregate: nothing on this stream
    send(producer, device, 2)
    two = until_state(stream, device, 2)
    stream.cancel()

    # A new stream starts with the current state, then the heartbeat.
    fresh, head = opened(watch, projection_type="sensor_state", aggregate_id=device)
    assert head.WhichOneof("item") == "projection" and head.projection.state["n"] == 2
    assert next(fresh).WhichOneof("item") == "heartbeat"
    fresh.cancel()

    # Resumed after state 1: the change after it (state 2), no snapshot first.
    resumed, again = opened(
        watch, projection_type="sensor_state", aggregate_id=device, position=one.position
    )
    got = until_state(resumed, device, 2, again)
    assert got.projection.last_event_id == two.projection.last_event_id
    resumed.cancel()


def test_every_projection_of_a_type(
    watch: watch_pb2_grpc.WatchServiceStub, producer: Producer
) -> None:
    known = unique("known")
    send(producer, known, 3)
    # wait for it with a stream of its own (the handler applies it)
    s, m = opened(watch, projection_type="sensor_state", aggregate_id=known)
    until_state(s, known, 3, m)
    s.cancel()

    stream, first = opened(watch, projection_type="sensor_state")
    snapshot = [first]
    while snapshot[-1].WhichOneof("item") == "projection":
        snapshot.append(next(stream))
    assert snapshot[-1].WhichOneof("item") == "heartbeat"
    assert known in {m.projection.aggregate_id for m in snapshot[:-1]}
    newcomer = unique("new")
    send(producer, newcomer, 5)
    until_state(stream, newcomer, 5)
    stream.cancel()


@pytest.mark.parametrize(
    ("request_fields", "needle"),
    [
        ({"projection_type": ""}, "projection_type"),
        ({"projection_type": "Bad-Type"}, "projection_type"),
        ({"projection_type": "sensor_state", "aggregate_id": "a\x01b"}, "aggregate_id"),
        ({"projection_type": "sensor_state", "position": "w1.garbage"}, "position"),
    ],
)
def test_bad_requests_are_invalid_argument(
    watch: watch_pb2_grpc.WatchServiceStub, request_fields: dict[str, str], needle: str
) -> None:
    def attempt() -> grpc.RpcError | None:
        try:
            next(watch.WatchProjection(watch_pb2.WatchProjectionRequest(**request_fields)))
        except grpc.RpcError as e:
            return None if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED else e
        raise AssertionError("the stream was accepted")

    err = eventually(attempt, what="a free watcher slot")
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert needle in (err.details() or "")
