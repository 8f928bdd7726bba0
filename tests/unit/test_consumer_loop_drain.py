"""A stopping consumer drains what was stored before it stopped, but never forever: under
traffic that does not stop (another producer still writing), the drain ends after
``drain_limit`` with what it handled committed, and the rest is read again by the group's
next owner (review finding: its stop waited for an empty poll that never came)."""

from __future__ import annotations

import threading
from typing import Any

from confluent_kafka import TopicPartition

from services.infra.consumer_loop import ConsumerLoop
from tests.unit.test_consumer_loop_offsets import Msg


class EndlessTraffic:
    """One partition that always has a next message (a producer that never stops)."""

    def __init__(self) -> None:
        self.next = 0
        self.commits: list[int] = []
        self.closed = False

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        callbacks["on_assign"](self, [TopicPartition("t", 0)])

    def assign(self, partitions: list[TopicPartition]) -> None:
        pass

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [TopicPartition("t", 0, 0)]

    def poll(self, timeout: float) -> Msg:
        msg = Msg(0, self.next)
        self.next += 1
        return msg

    def consume(self, n: int, timeout: float) -> list[Msg]:
        return []

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return []

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition("t", 0)]

    def commit(self, offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        self.commits.extend(tp.offset for tp in offsets)

    def close(self) -> None:
        self.closed = True


def test_the_drain_on_stop_ends_under_endless_traffic_with_what_it_handled_committed() -> None:
    consumer = EndlessTraffic()
    handled: list[int] = []
    loop: ConsumerLoop

    def handle(msgs: list[Any]) -> None:
        handled.extend(m.offset() for m in msgs)
        if len(handled) == 5:
            loop.stop_event.set()

    loop = ConsumerLoop(
        consumer,  # type: ignore[arg-type]
        handle,
        ("t",),
        batch_size=10,
        poll_timeout=0.01,
        group="g",
        span_name=lambda m: "x",
        drain_limit=0.2,
    )
    runner = threading.Thread(target=loop.run, daemon=True)
    runner.start()
    runner.join(timeout=30)
    assert not runner.is_alive(), "the drain never ended under endless traffic"
    assert consumer.closed
    # Everything handled was committed, in order, nothing past it.
    assert handled == list(range(len(handled))) and len(handled) > 5
    assert max(consumer.commits) == handled[-1] + 1
