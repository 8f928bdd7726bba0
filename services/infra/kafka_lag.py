"""How far a consumer group is behind the end of its topics, read from outside the group.

Used by the benchmark's sampler and by ``cornjacket up`` before it swaps the embedded broker
(which must not drop messages a consumer has not read yet).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from services.config.settings import KafkaSecurity
from services.infra.kafka import PLAINTEXT, client_config

_QUERY_TIMEOUT_S = 2.0
_PARTITIONS_REFRESH_S = 10.0
_TAIL_READ_S = 1.0


class GroupLag:
    """Lag of a consumer group without joining it.

    The consumer has the group's id but never subscribes, so it cannot trigger a rebalance of
    the real consumers, and it never commits; it reads committed offsets (OffsetFetch) and the
    end of each partition. A partition with nothing committed counts from its low watermark; a
    topic that does not exist yet has no lag.

    The end is not just the ListOffsets high watermark: Tansu 0.6 answers it with the *base*
    offset of the last record batch + 1, so after a 100-event relay batch it is 99 short and
    the lag would read ~0 while the consumer is far behind. So the probe also assigns itself
    to each partition at that watermark - 1 and reads to end-of-partition (one batch, a few
    ms), taking the largest of the watermark, the last offset read + 1, and the high watermark
    of the fetch response. On a real Kafka this reads one record and changes nothing.
    """

    def __init__(
        self,
        brokers: str,
        group: str,
        topics: Sequence[str],
        *,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self._brokers = brokers
        self._security = security
        self._group = group
        self._topics = list(topics)
        self._consumer: Any = None
        self._partitions: list[Any] = []
        self._partitions_at = 0.0

    def _ensure(self) -> Any:
        if self._consumer is None:
            self._consumer = Consumer(
                {
                    **client_config(self._brokers, self._security),
                    "group.id": self._group,
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "enable.partition.eof": True,
                    "allow.auto.create.topics": False,
                    "fetch.wait.max.ms": 10,
                    "queued.max.messages.kbytes": 2048,
                    "client.id": "cornjacket-lag-probe",
                    "log_level": 3,
                }
            )
        return self._consumer

    def _refresh_partitions(self, consumer: Any) -> None:
        parts: list[Any] = []
        for topic in self._topics:
            meta = consumer.list_topics(topic, timeout=_QUERY_TIMEOUT_S)
            tmeta = meta.topics.get(topic)
            if tmeta is None or tmeta.error is not None:
                continue  # not created yet: nothing published, nothing to lag behind
            parts.extend(TopicPartition(topic, p) for p in sorted(tmeta.partitions))
        self._partitions = parts
        self._partitions_at = time.monotonic()

    def _bounds(self, consumer: Any) -> dict[tuple[str, int], tuple[int, int]]:
        """(low, end) per partition, end corrected by reading the partition's tail."""
        bounds: dict[tuple[str, int], tuple[int, int]] = {}
        tails: list[Any] = []
        for tp in self._partitions:
            low, high = consumer.get_watermark_offsets(tp, timeout=_QUERY_TIMEOUT_S, cached=False)
            bounds[(tp.topic, tp.partition)] = (int(low), int(high))
            if high > low:
                tails.append(TopicPartition(tp.topic, tp.partition, int(high) - 1))
        if not tails:
            return bounds
        ends = {key: end for key, (_, end) in bounds.items()}
        pending = {(tp.topic, tp.partition) for tp in tails}
        consumer.assign(tails)
        try:
            deadline = time.monotonic() + _TAIL_READ_S
            while pending and time.monotonic() < deadline:
                for m in consumer.consume(num_messages=1000, timeout=0.05):
                    key = (str(m.topic()), int(m.partition()))
                    err = m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            pending.discard(key)
                        continue
                    ends[key] = max(ends.get(key, 0), int(m.offset()) + 1)
            for tp in tails:
                _, fetched_high = consumer.get_watermark_offsets(tp, cached=True)
                key = (tp.topic, tp.partition)
                if fetched_high is not None and fetched_high >= 0:
                    ends[key] = max(ends[key], int(fetched_high))
        finally:
            consumer.unassign()
        return {key: (low, ends[key]) for key, (low, _) in bounds.items()}

    def lag(self) -> int | None:
        try:
            consumer = self._ensure()
            if not self._partitions or time.monotonic() - self._partitions_at > (
                _PARTITIONS_REFRESH_S
            ):
                self._refresh_partitions(consumer)
            if not self._partitions:
                return 0
            # Committed first, ends second: a commit landing in between can only make the lag
            # read slightly high, never negative.
            committed = consumer.committed(self._partitions, timeout=_QUERY_TIMEOUT_S)
            bounds = self._bounds(consumer)
            total = 0
            for tp in committed:
                if tp.error is not None:
                    return None
                low, end = bounds[(tp.topic, tp.partition)]
                start = tp.offset if tp.offset >= 0 else low
                total += max(0, end - int(start))
            return total
        except Exception:
            # confluent_kafka raises KafkaException, but also RuntimeError/TypeError on a
            # closed handle or a timeout returning None; any of them means "unknown".
            self._partitions = []
            return None

    def close(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                self._consumer.close()
            self._consumer = None
