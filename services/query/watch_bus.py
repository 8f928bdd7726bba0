"""The watchers' bus readers (issue 19): one confluent-kafka consumer per watcher, assigned
explicitly at a position (no group join, no commits), on a thread of its own so a blocking
poll never holds the event loop or another watcher."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from services.config.settings import KafkaSecurity
from services.core.errors import InvalidInput, Unavailable
from services.core.events import ALL_TOPICS
from services.infra.codec import DecodeError, decode_event
from services.infra.kafka import PLAINTEXT, client_config, consumer_config, fetch_wait
from services.infra.skips import SkipGuard
from services.query.watch import BusRecord, Partition, Position, PositionExpired

log = logging.getLogger(__name__)

BATCH = 500
TIMEOUT = 5.0
# _true_end reads a partition's tail until a read of this long comes back empty (at least
# four fetch waits: a lingering fetch may hold the tail's last batch).
TAIL_WAIT = 0.2


# How often a reader asks the bus which cluster it is (and which partitions it has): an
# empty broker swapped in for the last one (`cornjacket up`, ADR 11) answers with another
# cluster id, and the offsets the reader holds mean nothing there.
CHECK_EVERY = 1.0
CHECK_TIMEOUT = 1.0
# Errors that mean the reader lost its broker: the next read asks which cluster it is first.
_LOST = frozenset({KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT})


def bus_id(cluster_id: str | None) -> str:
    """A position's name for the bus (a digest of its cluster id; "" when it names none)."""
    if not cluster_id:
        return ""
    return hashlib.sha256(cluster_id.encode()).hexdigest()[:12]


def _partitions(meta: Any, topics: Sequence[str]) -> list[Partition]:
    found = []
    for topic in topics:
        tmeta = meta.topics.get(topic)
        if tmeta is None or tmeta.error is not None:
            continue  # not created yet (ingestion creates the topics)
        found += [(topic, p) for p in sorted(tmeta.partitions)]
    return found


class KafkaBusReader:
    def __init__(
        self,
        consumer: Consumer,
        executor: ThreadPoolExecutor,
        *,
        bus: str = "",
        topics: Sequence[str] = ALL_TOPICS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._consumer = consumer
        self._executor = executor
        self._bus = bus
        self._topics = tuple(topics)
        self._clock = clock
        self._checked_at = clock()
        self._lost = False  # the broker went away since the last check (error_cb)
        self._replaced: Position | None = None
        # Where each partition's next message must be: a skip by the broker is read again
        # before the stream goes past it (services/infra/skips.py, ADR 18).
        self._skips = SkipGuard("watch")

    def start_at(self, offsets: dict[Partition, int]) -> None:
        for key, offset in offsets.items():
            self._skips.expect(key, offset)

    def on_error(self, err: KafkaError) -> None:
        """librdkafka's error_cb (called inside consume, on the reader's thread)."""
        if err.code() in _LOST:
            self._lost = True

    def replaced(self) -> Position | None:
        """The position the reader started again at when it found the bus replaced since
        the last call (every partition of the new bus from its beginning), else None."""
        at, self._replaced = self._replaced, None
        return at

    async def read(self, max_wait: float) -> Sequence[BusRecord]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._read, max_wait)

    def _check(self) -> None:
        """Which cluster the bus is now, and its partitions. Another cluster: every offset
        held refers to the bus that is gone; the swap happens only once every consumer group
        has read the old bus to its end, so nothing of it is pending and the reader starts
        again from the beginning of every partition of the new one. The same cluster: a
        partition that appeared since (a topic created after the stream opened) is read
        from its beginning."""
        try:
            meta = self._consumer.list_topics(timeout=CHECK_TIMEOUT)
        except KafkaException:
            return  # unreachable: asked again on the next read
        self._checked_at, self._lost = self._clock(), False
        bus = bus_id(meta.cluster_id)
        present = _partitions(meta, self._topics)
        if bus != self._bus:
            self._consumer.assign([TopicPartition(t, p, 0) for t, p in present])
            log.warning(
                "watch: the bus was replaced (another cluster id: an empty broker swapped in); "
                "the stream goes on from the beginning of the new bus, and positions taken "
                "before are refused",
                extra={"bus_was": self._bus, "bus": bus, "partitions": len(present)},
            )
            self._bus = bus
            self._skips = SkipGuard("watch")
            self.start_at(dict.fromkeys(present, 0))
            self._replaced = Position(dict.fromkeys(present, 0), bus)
            return
        new = [tp for tp in present if tp not in self._skips.next]
        if new:
            self._consumer.incremental_assign([TopicPartition(t, p, 0) for t, p in new])
            self.start_at(dict.fromkeys(new, 0))

    def _read(self, max_wait: float) -> list[BusRecord]:
        # Asked before reading: after the broker went away, nothing is read from a new one
        # at the old bus's offsets.
        if self._lost or self._clock() - self._checked_at >= CHECK_EVERY:
            self._check()
            if self._lost:
                # Which bus answers is unknown (the check failed): a fetch now would reach a
                # new broker the moment it is up at the old bus's offsets. Read nothing.
                time.sleep(max_wait)
                return []
        messages = []
        for msg in self._consumer.consume(BATCH, max_wait):
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise Unavailable(f"bus read failed: {err}")
            if msg.offset() is not None:
                messages.append(msg)
        records = []
        for msg in self._skips.filter(messages, self._seek):
            topic, partition, offset = str(msg.topic()), int(msg.partition() or 0), msg.offset()
            try:
                event = decode_event(msg.value() or b"")
            except DecodeError as e:  # not ours to stop on: skip it, like the handler's DLQ
                log.warning("watch: undecodable message skipped", extra={"error": str(e)})
                continue
            records.append(BusRecord(topic, partition, int(offset or 0), event))
        return records

    def _seek(self, key: Partition, offset: int) -> bool:
        try:
            self._consumer.seek(TopicPartition(key[0], key[1], offset))
            return True
        except KafkaException as e:
            log.warning("watch: could not seek back to skipped offsets", extra={"error": str(e)})
            return False

    def lag(self) -> int:
        behind = 0
        for (topic, partition), nxt in self._skips.next.items():
            try:
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), cached=True
                )
            except KafkaException:
                continue
            if high >= 0:
                behind += max(0, high - nxt)
        return behind

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._consumer.close)
        finally:
            self._executor.shutdown(wait=False)


class KafkaBusOpener:
    def __init__(
        self,
        brokers: str,
        security: KafkaSecurity = PLAINTEXT,
        topics: Sequence[str] = ALL_TOPICS,
        *,
        fetch_linger: float = 0.0,
    ) -> None:
        self._brokers = brokers
        self._security = security
        self._topics = tuple(topics)
        self._fetch_linger = fetch_linger

    async def open(self, start: Position | None) -> tuple[KafkaBusReader, Position]:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="watch")
        loop = asyncio.get_running_loop()
        errors: list[KafkaError] = []  # until the reader takes the callback over
        sink: list[Callable[[KafkaError], None]] = [errors.append]
        try:
            consumer, at = await loop.run_in_executor(
                executor, self._open, start, lambda e: sink[0](e)
            )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        reader = KafkaBusReader(consumer, executor, bus=at.bus, topics=self._topics)
        reader.start_at(dict(at.offsets))
        sink[0] = reader.on_error
        for e in errors:
            reader.on_error(e)
        return reader, at

    def _open(
        self, start: Position | None, on_error: Callable[[KafkaError], None]
    ) -> tuple[Consumer, Position]:
        config: dict[str, Any] = consumer_config(
            self._brokers,
            f"cj-watch-{uuid.uuid4()}",  # never joined: partitions are assigned
            security=self._security,
            fetch_linger=self._fetch_linger,
            **{"auto.offset.reset": "error", "enable.partition.eof": False, "error_cb": on_error},
        )
        consumer = Consumer(config)
        try:
            offsets: dict[Partition, int] = {}
            meta = consumer.list_topics(timeout=TIMEOUT)
            bus = bus_id(meta.cluster_id)
            if start is not None and start.bus and start.bus != bus:
                raise PositionExpired(
                    "the position is from a bus that was replaced since (the embedded broker "
                    "was swapped for an empty one): its offsets mean nothing on this one; "
                    "start a new stream without a position"
                )
            for topic, partition in _partitions(meta, self._topics):
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=TIMEOUT
                )
                asked = start.offsets.get((topic, partition)) if start else None
                if asked is not None and asked > high > low:
                    high = _true_end(
                        consumer,
                        topic,
                        partition,
                        high,
                        max(TAIL_WAIT, 4 * fetch_wait(self._fetch_linger)),
                    )
                offsets[(topic, partition)] = _start_offset(start, (topic, partition), low, high)
            consumer.assign([TopicPartition(t, p, o) for (t, p), o in offsets.items()])
            return consumer, Position(offsets, bus)
        except KafkaException as e:
            consumer.close()
            raise Unavailable(f"bus unreachable: {e}") from None
        except BaseException:
            consumer.close()
            raise


def _true_end(
    consumer: Consumer, topic: str, partition: int, high: int, wait: float = TAIL_WAIT
) -> int:
    """The partition's end, read from its tail: Tansu 0.6 answers the high watermark with the
    base offset of its last record batch + 1 (services/infra/kafka_lag.py), so a position
    taken from the last messages of a batch is past that watermark. Reads from the
    watermark - 1 until nothing more comes (one batch); on a real Kafka it reads one message
    and changes nothing."""
    end = high
    consumer.assign([TopicPartition(topic, partition, high - 1)])
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            batch = consumer.consume(num_messages=1000, timeout=wait)
            if not batch:
                break
            for m in batch:
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        return end
                    continue
                offset = m.offset()
                if offset is not None:
                    end = max(end, offset + 1)
    finally:
        consumer.unassign()
    return end


def _start_offset(start: Position | None, tp: Partition, low: int, high: int) -> int:
    if start is None:
        return high  # from now
    if tp not in start.offsets:
        return low  # a partition the position did not know yet: all of it
    offset = start.offsets[tp]
    if offset < low:
        raise PositionExpired(
            f"the position is older than the bus keeps ({tp[0]}[{tp[1]}] starts at {low}, "
            f"the position asks for {offset}): start a new stream without a position"
        )
    if offset > high:
        raise InvalidInput(
            f"position: {tp[0]}[{tp[1]}] offset {offset} is past the end of the bus ({high})"
        )
    return offset


class GroupOffsets:
    """AppliedOffsets from a consumer group's committed offsets (OffsetFetch), read without
    joining the group: the consumer has the group's id but never subscribes (no rebalance
    of the real consumers) and never commits. One per process, shared by the projection
    streams; an answer is reused for ``max_age`` seconds so N streams cost one fetch."""

    def __init__(
        self,
        brokers: str,
        group: str,
        security: KafkaSecurity = PLAINTEXT,
        topics: Sequence[str] = ALL_TOPICS,
        *,
        max_age: float = 0.1,
    ) -> None:
        self._brokers = brokers
        self._group = group
        self._security = security
        self._topics = tuple(topics)
        self._max_age = max_age
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="watch-applied")
        self._lock = asyncio.Lock()
        self._consumer: Consumer | None = None
        self._partitions: list[TopicPartition] = []
        self._partitions_at = 0.0
        self._bus = ""
        self._answer: Position | None = None
        self._answer_at = 0.0

    async def applied(self) -> Position:
        async with self._lock:
            now = time.monotonic()
            if self._answer is None or now - self._answer_at >= self._max_age:
                loop = asyncio.get_running_loop()
                self._answer = await loop.run_in_executor(self._executor, self._fetch)
                self._answer_at = time.monotonic()
            return self._answer

    def _fetch(self) -> Position:
        try:
            if self._consumer is None:
                self._consumer = Consumer(
                    {
                        **client_config(self._brokers, self._security),
                        "group.id": self._group,
                        "enable.auto.commit": False,
                        "enable.auto.offset.store": False,
                        "allow.auto.create.topics": False,
                        "client.id": "cornjacket-watch-applied",
                        "log_level": 3,
                    }
                )
            consumer = self._consumer
            # Asked each time (one answer serves every stream for max_age): which bus the
            # offsets are of, so a stream reading another (a swap seen by one side first)
            # does not take them for its own.
            meta = consumer.list_topics(timeout=TIMEOUT)
            bus = bus_id(meta.cluster_id)
            if bus != self._bus or time.monotonic() - self._partitions_at > 10.0:
                self._partitions_at = time.monotonic()
                self._partitions = [
                    TopicPartition(t, p) for t, p in _partitions(meta, self._topics)
                ]
            self._bus = bus
            if not self._partitions:
                return Position({}, bus)
            committed = consumer.committed(self._partitions, timeout=TIMEOUT)
        except KafkaException as e:
            raise Unavailable(f"the event handler's progress is unreadable: {e}") from None
        # Nothing committed yet (OFFSET_INVALID, negative): not named, so a stream opened
        # there starts at the partition's beginning, where the handler starts too.
        return Position(
            {(str(tp.topic), int(tp.partition)): tp.offset for tp in committed if tp.offset >= 0},
            bus,
        )

    def close(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(KafkaException, RuntimeError):
                self._consumer.close()
        self._executor.shutdown(wait=False)
