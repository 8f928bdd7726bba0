"""The shared consumer loop (services/infra/consumer_loop.py) against the real broker: two real
consumers in one group, a database outage simulated by a handle that raises Unavailable, and
a rebalance in the middle of the outage.

What must hold: every message is handled (none is skipped while the loop is blocked), and the
group's committed offsets never go backwards (no consumer commits a partition it lost).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition

from services.cli.embedded import EmbeddedBroker
from services.core.errors import Unavailable
from services.infra.consumer_loop import ConsumerLoop
from services.infra.kafka import consumer_config, ensure_topics
from tests.support import eventually, unique

pytestmark = pytest.mark.component

PARTITIONS = (0, 1)
KEPT = "kept a message polled while blocked"


class CommitLog:
    """Every offset any consumer of the test asked to commit, in the order asked."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: list[tuple[str, int, int]] = []  # (consumer, partition, offset)

    def record(self, who: str, offsets: list[TopicPartition]) -> None:
        with self.lock:
            self.entries.extend((who, tp.partition, tp.offset) for tp in offsets)

    def backwards(self) -> list[str]:
        """Commits lower than an earlier commit of the same partition."""
        found, high = [], dict.fromkeys(PARTITIONS, -1)
        with self.lock:
            for who, part, offset in self.entries:
                if offset < high[part]:
                    found.append(f"{who} committed [{part}] at {offset} after {high[part]}")
                high[part] = max(high[part], offset)
        return found


class Spy(Consumer):
    """A real consumer that also notes, on the loop's own thread, what a test cannot ask the
    loop: the partitions it owns after each poll, how many polls it made, its commits."""

    def __init__(self, config: dict[str, Any], name: str, commits: CommitLog) -> None:
        super().__init__(config)
        self.name = name
        self.commits = commits
        self.polls = 0
        self.owned: frozenset[int] = frozenset()

    def _note(self) -> None:
        self.polls += 1
        self.owned = frozenset(tp.partition for tp in self.assignment())

    def poll(self, timeout: float = -1) -> Message | None:
        msg = super().poll(timeout)
        self._note()
        return msg

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        msgs = super().consume(num_messages, timeout)
        self._note()
        return msgs

    def commit(self, *args: Any, **kwargs: Any) -> Any:
        offsets = kwargs.get("offsets")
        if offsets:
            self.commits.record(self.name, offsets)
        return super().commit(*args, **kwargs)


@dataclass
class Member:
    """One consumer of the group: a real ConsumerLoop on its own thread."""

    name: str
    consumer: Spy
    loop: ConsumerLoop
    handled: list[tuple[int, int, bytes]] = field(default_factory=list)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self.loop.run, name=self.name, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.loop.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
            assert not self.thread.is_alive(), f"{self.name} did not stop"


class Group:
    """A topic of two partitions and the consumers of one group reading it."""

    def __init__(self, brokers: str) -> None:
        self.brokers = brokers
        self.topic = unique("loop")
        self.group = unique("loop-group")
        ensure_topics(brokers, [self.topic], partitions=len(PARTITIONS))
        self.producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True})
        self.produced: dict[int, list[bytes]] = {p: [] for p in PARTITIONS}
        self.commits = CommitLog()
        self.members: list[Member] = []
        self._n = 0

    def member(
        self,
        name: str,
        handle: Callable[[Member, list[Message]], None],
        loop_class: type[ConsumerLoop] = ConsumerLoop,
    ) -> Member:
        consumer = Spy(consumer_config(self.brokers, self.group), name, self.commits)
        holder: list[Member] = []
        loop = loop_class(
            consumer,
            lambda msgs: handle(holder[0], msgs),
            (self.topic,),
            batch_size=100,
            poll_timeout=0.1,
            group=self.group,
            span_name=lambda m: "test",
        )
        m = Member(name, consumer, loop)
        holder.append(m)
        self.members.append(m)
        m.start()
        return m

    def produce(self, partition: int, count: int) -> None:
        for _ in range(count):
            self._n += 1
            value = f"m{self._n}".encode()
            self.producer.produce(self.topic, value=value, partition=partition)
            self.produced[partition].append(value)
        assert self.producer.flush(10) == 0

    def unhandled(self) -> list[bytes]:
        seen = {value for m in self.members for _, _, value in m.handled}
        return [v for values in self.produced.values() for v in values if v not in seen]

    def wait_all_handled(self, when: str, timeout: float = 60) -> None:
        try:
            eventually(lambda: not self.unhandled(), timeout=timeout, what=f"all handled {when}")
        except AssertionError:
            raise AssertionError(f"never handled {when}: {self.unhandled()}") from None

    def committed(self) -> dict[int, int]:
        """The group's committed offsets, as the broker holds them (read without joining)."""
        reader = Consumer({"bootstrap.servers": self.brokers, "group.id": self.group})
        try:
            tps = reader.committed([TopicPartition(self.topic, p) for p in PARTITIONS], timeout=10)
            return {tp.partition: tp.offset for tp in tps}
        finally:
            reader.close()

    def ends(self) -> dict[int, int]:
        return {p: len(self.produced[p]) for p in PARTITIONS}

    def stop(self) -> None:
        for m in self.members:
            m.stop()


@pytest.fixture
def group(broker: EmbeddedBroker) -> Iterator[Group]:
    g = Group(broker.bootstrap)
    try:
        yield g
    finally:
        for m in g.members:
            m.loop.stop_event.set()
        for m in g.members:
            if m.thread is not None:
                m.thread.join(timeout=30)


class NoPauseOnAssign(ConsumerLoop):
    """The loop with its pause of newly assigned partitions left out, as if it had not taken
    effect: its blocked polls then return messages, which must be kept, not dropped."""

    def _follow_pause(self, *args: Any, **kwargs: Any) -> None:
        pass


def record(member: Member, msgs: list[Message]) -> None:
    member.handled.extend(
        (int(m.partition() or 0), int(m.offset() or 0), m.value() or b"") for m in msgs
    )


def owns(member: Member, parts: set[int]) -> bool:
    return member.consumer.owned == frozenset(parts)


@pytest.mark.parametrize(
    "loop_class", [ConsumerLoop, NoPauseOnAssign], ids=["paused-on-assign", "kept-when-polled"]
)
def test_partition_assigned_during_an_outage_loses_nothing(
    group: Group, loop_class: type[ConsumerLoop], caplog: pytest.LogCaptureFixture
) -> None:
    """The database is down; one consumer of the group stops; the other, blocked, is handed
    its partition. Nothing the blocked consumer polls may be dropped: once the database is
    back every message is handled and the committed offsets are at the end."""
    caplog.set_level(logging.INFO, logger="services.infra.consumer_loop")
    down = threading.Event()

    def handle(member: Member, msgs: list[Message]) -> None:
        if down.is_set():
            raise Unavailable("database down (simulated)")
        record(member, msgs)

    a = group.member("a", handle, loop_class)
    b = group.member("b", handle, loop_class)
    eventually(
        lambda: len(a.consumer.owned) == 1 and len(b.consumer.owned) == 1,
        timeout=60,
        what="one partition each",
    )
    down.set()
    for p in PARTITIONS:
        group.produce(p, 20)
    eventually(lambda: not a.loop.db_ok and not b.loop.db_ok, timeout=30, what="both blocked")
    b.stop()  # leaves the group: a is handed b's partition while it is blocked
    eventually(lambda: owns(a, set(PARTITIONS)), timeout=60, what="a owns both partitions")
    if loop_class is NoPauseOnAssign:
        # The new partition is not paused: a blocked poll returns one of its messages.
        eventually(
            lambda: any(r.getMessage() == KEPT for r in caplog.records),
            timeout=30,
            what="a blocked poll returns a message",
        )
    else:
        # Let the blocked consumer poll a few times with its new partition (where a
        # message of a partition left unpaused would come back).
        polls = a.consumer.polls
        eventually(lambda: a.consumer.polls >= polls + 2, timeout=30, what="a polls, blocked")
    down.clear()
    group.wait_all_handled("after the outage")
    a.stop()
    assert group.committed() == group.ends()
    assert not group.commits.backwards()


def lose_a_partition_during_an_outage(group: Group) -> tuple[Member, Member, int, threading.Event]:
    """Consumer a, alone, is blocked on a batch holding both partitions (the database is down
    for a: ``outage``, returned, set); consumer b joins and takes one of them (``lost``,
    returned), reads it to the end and commits."""
    armed, outage = threading.Event(), threading.Event()
    blocked: list[Message] = []

    def handle_a(member: Member, msgs: list[Message]) -> None:
        if outage.is_set():
            raise Unavailable("database down (simulated)")
        if armed.is_set() and {m.partition() for m in msgs} == set(PARTITIONS):
            # The database goes down under a batch that spans both partitions.
            blocked[:] = msgs
            armed.clear()
            outage.set()
            raise Unavailable("database down (simulated)")
        record(member, msgs)

    a = group.member("a", handle_a)
    eventually(lambda: owns(a, set(PARTITIONS)), timeout=60, what="a owns both partitions")
    group.produce(0, 5)
    group.produce(1, 5)
    group.wait_all_handled("before the outage", timeout=30)
    armed.set()
    # Steady traffic on both partitions until a batch spans both of them.
    deadline = time.monotonic() + 60
    while not outage.is_set():
        assert time.monotonic() < deadline, "no batch spanned both partitions"
        for p in PARTITIONS:
            group.produce(p, 3)
    eventually(lambda: not a.loop.db_ok, timeout=30, what="a blocked")
    for p in PARTITIONS:
        group.produce(p, 10)  # beyond the blocked batch: the new owner commits past it
    b = group.member("b", lambda m, msgs: record(m, msgs))
    eventually(
        lambda: len(a.consumer.owned) == 1 and len(b.consumer.owned) == 1,
        timeout=60,
        what="one partition each",
    )
    (lost,) = set(PARTITIONS) - a.consumer.owned
    assert any(m.partition() == lost for m in blocked)
    eventually(
        lambda: group.committed()[lost] == group.ends()[lost],
        timeout=30,
        what="b commits the partition it took to the end",
    )
    return a, b, lost, outage


def test_partition_revoked_while_its_batch_is_blocked_is_not_committed(group: Group) -> None:
    """When the database is back, the consumer that lost a partition during the outage must
    not commit its stale offset for it (the batch it was blocked on held that partition)."""
    a, b, _, outage = lose_a_partition_during_an_outage(group)
    outage.clear()  # the database is back for a
    group.wait_all_handled("after the outage")
    eventually(lambda: a.loop.db_ok, timeout=30, what="a unblocked")
    a.stop()  # commits what it holds, synchronously
    assert group.committed() == group.ends()
    b.stop()
    assert group.committed() == group.ends()
    assert not group.commits.backwards()


def test_partition_paused_in_an_outage_and_assigned_back_after_it_is_read(group: Group) -> None:
    """The partition a consumer paused when the database went down and lost during the outage
    comes back to it after the outage: it must be read again (a pause outlives a revoke)."""
    a, b, lost, outage = lose_a_partition_during_an_outage(group)
    outage.clear()
    group.wait_all_handled("after the outage")
    eventually(lambda: a.loop.db_ok, timeout=30, what="a unblocked")
    b.stop()  # a is handed the partition back
    eventually(lambda: owns(a, set(PARTITIONS)), timeout=60, what="a owns both partitions")
    group.produce(lost, 5)
    group.wait_all_handled(f"on partition {lost}, back with a")
    a.stop()
    assert group.committed() == group.ends()
    assert not group.commits.backwards()
