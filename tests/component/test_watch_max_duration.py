"""CJ_WATCH_MAX_DURATION (issue 19) in a real query process reading the real broker: the
server ends a stream at that age with the reason MAX_DURATION after freeing its slot, and the
SDK's iterator carries on from its position: every event once, in order, across the ends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from confluent_kafka import Producer
from cornjacket.v1 import watch_pb2, watch_pb2_grpc
from cornjacket_sdk import Client

from services.cli.processes import free_port
from services.core.events import ALL_TOPICS, Event, topic_for
from services.infra import migrations
from services.infra.codec import encode_event
from services.infra.kafka import ensure_topics
from tests.support import service_process, unique

pytestmark = pytest.mark.component

T = datetime(2026, 12, 1, tzinfo=UTC)
MAX_DURATION = 2  # seconds; the bound on the test's streams


@pytest.fixture(scope="module")
def address(database: str, broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    migrations.apply(database, "eventhandler")
    ensure_topics(broker.bootstrap, list(ALL_TOPICS), partitions=2)
    port = free_port()
    env = {
        "CJ_QUERY_DATABASE_URL": database,
        "CJ_QUERY_PORT": str(port),
        "CJ_REDPANDA_BROKERS": broker.bootstrap,
        # One slot: a stream reopened the moment the old one ended must find it free.
        "CJ_WATCH_MAX_WATCHERS": "1",
        "CJ_WATCH_MAX_DURATION": f"{MAX_DURATION}s",
    }
    target = f"127.0.0.1:{port}"
    with service_process("query", env, tmp_path_factory.mktemp("wd"), target):
        yield target


@pytest.fixture(scope="module")
def producer(broker: Any) -> Iterator[Producer]:
    p = Producer({"bootstrap.servers": broker.bootstrap})
    yield p
    p.flush(10)


def send(producer: Producer, aggregate_id: str, n: int) -> str:
    event_id = str(uuid.uuid4())
    event = Event(event_id, "sensor.reading", aggregate_id, T, T, {"n": n})
    producer.produce(topic_for(event.event_type), encode_event(event), key=aggregate_id.encode())
    producer.flush(10)
    return event_id


def test_the_server_ends_a_stream_at_its_maximum_duration_and_frees_the_slot(
    address: str,
) -> None:
    with grpc.insecure_channel(address) as channel:
        stub = watch_pb2_grpc.WatchServiceStub(channel)
        request = watch_pb2.WatchEventsRequest(aggregate_id=unique("dev"))
        msgs = list(stub.WatchEvents(request, timeout=60))  # ends by itself
        assert msgs[0].WhichOneof("item") == "heartbeat"
        end = msgs[-1]
        assert end.WhichOneof("item") == "end", msgs
        assert end.end.reason == watch_pb2.WATCH_END_REASON_MAX_DURATION
        assert "CJ_WATCH_MAX_DURATION" in end.end.message and end.position
        # The only slot is free already: opened at once from the end's position.
        again = stub.WatchEvents(
            watch_pb2.WatchEventsRequest(aggregate_id=request.aggregate_id, position=end.position),
            timeout=60,
        )
        assert next(again).WhichOneof("item") == "heartbeat"
        again.cancel()


def test_the_sdk_iterator_carries_on_across_the_ends_without_gap_or_duplicate(
    address: str, producer: Producer
) -> None:
    device = unique("dev")
    sent: list[str] = []
    got: list[str] = []
    with Client(address) as cj, cj.watch_events(aggregate_id=device) as stream:
        stream.start()  # reading from here on: what is sent now is on the stream
        n = 0
        rounds_after_end = 0
        # Events in flight around the server's end (three sent, then three read, each
        # round), and three rounds on the reopened stream; each round waits for its events.
        while rounds_after_end < 3:
            batch = [send(producer, device, n + i) for i in range(3)]
            sent += batch
            n += 3
            got += [next(stream).event_id for _ in batch]
            if stream.end is not None:
                assert stream.end.reason == "max_duration", stream.end
                rounds_after_end += 1
            assert n < 100_000, "the stream was never ended"
        assert got == sent
