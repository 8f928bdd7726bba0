"""A partition the loop owns never stays paused once the database is back, even when a
resume inside an assign callback failed (review finding: it would never be fetched again)."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from services.infra.consumer_loop import ConsumerLoop


class FakeConsumer:
    """Just enough of confluent_kafka.Consumer: the first resume() fails."""

    def __init__(self) -> None:
        self.paused: set[tuple[str, int]] = set()
        self.fail_resume = True
        self.polls = 0
        self.loop: ConsumerLoop | None = None

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.callbacks = callbacks

    def assign(self, partitions: list[TopicPartition]) -> None:
        pass

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused.update((p.topic, p.partition) for p in partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        if self.fail_resume:
            self.fail_resume = False
            raise KafkaException("resume failed")
        self.paused.difference_update((p.topic, p.partition) for p in partitions)

    def poll(self, timeout: float) -> None:
        self.polls += 1
        if self.polls == 1:
            # A partition paused in an outage comes back while the database is fine; the
            # callback's resume fails.
            tp = TopicPartition("t", 0)
            self.paused.add(("t", 0))
            assert self.loop is not None
            self.loop._paused.add(("t", 0))
            self.callbacks["on_assign"](self, [tp])
        elif self.polls == 3:
            assert self.loop is not None
            self.loop.stop_event.set()
        return None

    def consume(self, n: int, timeout: float) -> list[Any]:
        return []

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return []

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition("t", 0)]

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [TopicPartition(p.topic, p.partition, 0) for p in partitions]

    def commit(self, **kw: Any) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_failed_resume_in_the_assign_callback_is_retried_by_the_loop() -> None:
    consumer = FakeConsumer()
    loop = ConsumerLoop(
        consumer,  # type: ignore[arg-type]
        lambda msgs: None,
        ("t",),
        batch_size=10,
        poll_timeout=0.01,
        group="g",
        span_name=lambda m: "x",
    )
    consumer.loop = loop
    loop.run()
    assert consumer.paused == set()
