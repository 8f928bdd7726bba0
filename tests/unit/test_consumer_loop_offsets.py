"""The loop logs where each partition starts after an assignment and warns when offsets are
skipped between the broker and it (the bus's topics are neither compacted nor
transactional, so a jump means a message never reached the consumer)."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import TopicPartition

from services.infra.consumer_loop import ConsumerLoop


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


def _loop() -> ConsumerLoop:
    return ConsumerLoop(
        None,  # type: ignore[arg-type]
        lambda msgs: None,
        ("t",),
        batch_size=10,
        poll_timeout=0.01,
        group="g",
        span_name=lambda m: "x",
    )


def test_a_skipped_offset_is_a_warning_naming_the_partition_and_both_offsets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = _loop()
    caplog.set_level(logging.INFO, logger="services.infra.consumer_loop")
    loop._follow_offsets([Msg(0, 7), Msg(0, 8), Msg(1, 3)])  # type: ignore[list-item]
    loop._follow_offsets([Msg(0, 9), Msg(1, 5)])  # type: ignore[list-item]
    starts = [r for r in caplog.records if r.msg == "reading a partition"]
    assert [(r.partition, r.offset) for r in starts] == [("t[0]", 7), ("t[1]", 3)]  # type: ignore[attr-defined]
    gaps = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [(r.partition, r.expected, r.got) for r in gaps] == [("t[1]", 4, 5)]  # type: ignore[attr-defined]


def test_a_new_assignment_starts_the_count_again(caplog: pytest.LogCaptureFixture) -> None:
    loop = _loop()
    caplog.set_level(logging.INFO, logger="services.infra.consumer_loop")
    loop._follow_offsets([Msg(0, 7)])  # type: ignore[list-item]
    loop._disown([TopicPartition("t", 0)])
    loop._follow_offsets([Msg(0, 3)])  # type: ignore[list-item]
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    starts = [r.offset for r in caplog.records if r.msg == "reading a partition"]  # type: ignore[attr-defined]
    assert starts == [7, 3]
