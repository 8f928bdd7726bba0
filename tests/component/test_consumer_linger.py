"""The shared consumer loop with a fetch linger (issue 20, ADR 23) against the real broker:
the broker holds each fetch up to the linger and answers with the batch gathered.

What must hold: every message is handled once, in partition order; an offset is committed
only after its message was handled; and a loop stopped right after messages were stored
handles them before it ends (its drain outwaits a fetch the broker is holding), although its
own poll timeout is far shorter than the linger. Behaviour only: no timing, no batch sizes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition

from services.cli.embedded import EmbeddedBroker
from services.infra.consumer_loop import ConsumerLoop
from services.infra.kafka import consumer_config, ensure_topics
from tests.support import eventually, unique

pytestmark = pytest.mark.component

PARTITIONS = (0, 1)


class Recorder(Consumer):
    """A real consumer that checks each commit against what the loop handled so far."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.lock = threading.Lock()
        self.handled: list[tuple[int, int, bytes]] = []  # (partition, offset, value)
        self.early: list[str] = []  # commits of offsets not handled yet

    def note(self, msgs: list[Message]) -> None:
        with self.lock:
            self.handled += [
                (int(m.partition() or 0), int(m.offset() or 0), m.value() or b"") for m in msgs
            ]

    def commit(self, *args: Any, **kwargs: Any) -> Any:
        offsets: list[TopicPartition] = kwargs.get("offsets") or []
        with self.lock:
            done = {(p, o) for p, o, _ in self.handled}
            self.early += [
                f"[{tp.partition}] committed at {tp.offset} before offset {tp.offset - 1} "
                "was handled"
                for tp in offsets
                if (tp.partition, tp.offset - 1) not in done
            ]
        return super().commit(*args, **kwargs)


class Lingering:
    """A topic of two partitions, a producer, and one lingering consumer loop reading it."""

    def __init__(self, brokers: str, linger: float, poll_timeout: float) -> None:
        self.brokers = brokers
        self.topic = unique("linger")
        self.group = unique("linger-group")
        ensure_topics(brokers, [self.topic], partitions=len(PARTITIONS))
        self.producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True})
        self.produced: dict[int, list[bytes]] = {p: [] for p in PARTITIONS}
        self.consumer = Recorder(consumer_config(brokers, self.group, fetch_linger=linger))
        self.loop = ConsumerLoop(
            self.consumer,
            self.consumer.note,
            (self.topic,),
            batch_size=100,
            poll_timeout=poll_timeout,
            group=self.group,
            span_name=lambda m: "test",
            fetch_linger=linger,
        )
        self.thread = threading.Thread(target=self.loop.run, name="lingering", daemon=True)
        self._n = 0

    def start(self) -> None:
        self.thread.start()
        eventually(self.loop.assigned.is_set, timeout=60, what="the loop's assignment")

    def produce(self, count: int) -> None:
        for _ in range(count):
            self._n += 1
            partition = PARTITIONS[self._n % len(PARTITIONS)]
            value = f"m{self._n}".encode()
            self.producer.produce(self.topic, value=value, partition=partition)
            self.produced[partition].append(value)
        assert self.producer.flush(10) == 0

    def handled_in(self, partition: int) -> list[bytes]:
        with self.consumer.lock:
            return [v for p, _, v in self.consumer.handled if p == partition]

    def stop(self) -> None:
        self.loop.stop_event.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the loop did not stop"

    def committed(self) -> dict[int, int]:
        reader = Consumer({"bootstrap.servers": self.brokers, "group.id": self.group})
        try:
            tps = reader.committed([TopicPartition(self.topic, p) for p in PARTITIONS], timeout=10)
            return {tp.partition: tp.offset for tp in tps}
        finally:
            reader.close()


@pytest.fixture
def lingering(broker: EmbeddedBroker, request: pytest.FixtureRequest) -> Iterator[Lingering]:
    linger, poll_timeout = request.param
    lingering = Lingering(broker.bootstrap, linger, poll_timeout)
    try:
        yield lingering
    finally:
        lingering.loop.stop_event.set()
        lingering.thread.join(timeout=60)


def wait_handled(lingering: Lingering, what: str) -> None:
    total = sum(len(v) for v in lingering.produced.values())
    eventually(lambda: len(lingering.consumer.handled) >= total, timeout=30, what=what)


def assert_all_once_in_order(lingering: Lingering) -> None:
    for p in PARTITIONS:
        assert lingering.handled_in(p) == lingering.produced[p], f"partition {p}"
    assert lingering.consumer.early == []
    assert lingering.committed() == {p: len(lingering.produced[p]) for p in PARTITIONS}


@pytest.mark.parametrize("lingering", [(0.25, 1.0)], indirect=True)
def test_a_lingering_consumer_handles_everything_once_in_order(lingering: Lingering) -> None:
    lingering.start()
    for burst in range(5):
        lingering.produce(7 + burst)
        wait_handled(lingering, f"burst {burst}")
    lingering.stop()
    assert_all_once_in_order(lingering)


@pytest.mark.parametrize("lingering", [(1.0, 0.05)], indirect=True)
def test_a_stop_drains_what_a_lingering_fetch_holds(lingering: Lingering) -> None:
    """Stopped right after 20 messages were stored: a poll of 50 ms comes back empty while
    the broker still holds the fetch (up to 1 s); the loop must not take that for the end."""
    lingering.start()
    lingering.produce(20)
    lingering.stop()
    assert_all_once_in_order(lingering)
