"""Skipped offsets (issue 16: the orchestrator lost an event across a rebalance, one run of
the replica fault test in five). The embedded broker makes a later record batch readable
before an earlier one when two producers write one partition at once, and a consumer at the
end of the partition reads past the earlier batch for good. The loop reads a skipped range
again before it handles or commits anything past it."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from services.infra.consumer_loop import REREADS, ConsumerLoop


class Msg:
    def __init__(self, partition: int, offset: int) -> None:
        self._partition = partition
        self._offset = offset

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def error(self) -> None:
        return None

    def headers(self) -> None:
        return None

    def value(self) -> bytes:
        return b""


class LateBatchBroker:
    """One partition, offsets 0..9; offsets 3-5 (one record batch) become readable only once
    `late_after` fetches have passed the position they belong at (the broker's race), or
    never. A consumer's position moves past whatever a fetch returned, as librdkafka's does."""

    def __init__(self, loop_stop: Any, late_after: int | None) -> None:
        self.at = 0
        self.late_after = late_after
        self.fetches = 0
        self.seeks: list[int] = []
        self._rest: list[Msg] = []
        self.commits: list[int] = []
        self.loop_stop = loop_stop

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        callbacks["on_assign"](self, [TopicPartition("t", 0)])

    def readable(self, offset: int) -> bool:
        if 3 <= offset <= 5:
            return self.late_after is not None and self.fetches > self.late_after
        return True

    def poll(self, timeout: float) -> Msg | None:
        self.fetches += 1
        batch = [o for o in range(self.at, 10) if self.readable(o)][:3]
        if not batch:
            if self.at >= 10 or self.fetches > 50:
                self.loop_stop()
            return None
        self.at = batch[-1] + 1
        self._rest = [Msg(0, o) for o in batch[1:]]
        return Msg(0, batch[0])

    def consume(self, n: int, timeout: float) -> list[Msg]:
        rest, self._rest = self._rest, []
        return rest

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append(tp.offset)
        self.at = tp.offset

    def commit(self, offsets: list[TopicPartition] | None = None, **kw: Any) -> None:
        if offsets:
            self.commits += [tp.offset for tp in offsets]

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition("t", 0)]

    def position(self, partitions: Any) -> list[TopicPartition]:
        return []

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool = False) -> tuple[int, int]:
        return (0, 10)

    def close(self) -> None:
        pass


def run(late_after: int | None) -> tuple[list[int], LateBatchBroker]:
    handled: list[int] = []
    loop: ConsumerLoop
    broker = LateBatchBroker(lambda: loop.stop_event.set(), late_after)
    loop = ConsumerLoop(
        broker,  # type: ignore[arg-type]
        lambda msgs: handled.extend(int(m.offset() or 0) for m in msgs),
        ("t",),
        batch_size=10,
        poll_timeout=0.0,
        group="g",
        span_name=lambda m: "x",
    )
    loop.run()
    return handled, broker


def test_a_batch_readable_late_is_read_again_before_anything_past_it() -> None:
    handled, broker = run(late_after=3)
    assert handled == list(range(10))  # nothing lost, in order
    assert broker.seeks and set(broker.seeks) == {3}
    # Nothing past the hole was committed before the hole was handled.
    assert all(c <= 3 for c in broker.commits[: broker.commits.index(6)])


def test_a_hole_that_stays_is_logged_as_missing_after_a_bounded_number_of_reads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="services.infra.consumer_loop")
    handled, broker = run(late_after=None)
    assert handled == [0, 1, 2, 6, 7, 8, 9]  # the loop goes on
    assert broker.seeks == [3] * REREADS
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [(r.missing_from, r.missing_to) for r in errors] == [(3, 5)]  # type: ignore[attr-defined]


def test_where_each_partition_starts_is_logged_and_a_new_assignment_starts_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = ConsumerLoop(
        None,  # type: ignore[arg-type]
        lambda msgs: None,
        ("t",),
        batch_size=10,
        poll_timeout=0.01,
        group="g",
        span_name=lambda m: "x",
    )
    caplog.set_level(logging.INFO, logger="services.infra.consumer_loop")
    loop._check_offsets([Msg(0, 7), Msg(1, 3)])  # type: ignore[list-item]
    loop._disown([TopicPartition("t", 0)])
    loop._check_offsets([Msg(0, 2)])  # type: ignore[list-item]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    starts = [(r.partition, r.offset) for r in caplog.records if r.msg == "reading a partition"]  # type: ignore[attr-defined]
    assert starts == [("t[0]", 7), ("t[1]", 3), ("t[0]", 2)]
