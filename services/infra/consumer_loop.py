"""The Kafka consumer loop the event handler and the orchestrator share: poll, handle, then
commit.

Offsets are committed only after ``handle`` returned (its effects are committed). While it
raises Unavailable (the database is down) the loop blocks on the same batch, partitions
paused and nothing committed, and resumes by itself; the outage is logged when it starts and
when it ends (with the number of failed attempts), not per attempt.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from services.core.errors import Unavailable
from services.infra import metrics, tracing

log = logging.getLogger(__name__)

LAG_INTERVAL = 5.0


def header(msg: Message, name: str) -> str:
    headers: Any = msg.headers() or ()
    for key, value in headers:
        if key == name and value is not None:
            return value.decode() if isinstance(value, bytes) else str(value)
    return ""


class ConsumerLoop:
    def __init__(
        self,
        consumer: Consumer,
        handle: Callable[[list[Message]], object],
        topics: tuple[str, ...],
        *,
        batch_size: int,
        poll_timeout: float,
        group: str,
        span_name: Callable[[Message], str],
        drain_on_stop: bool = True,
    ) -> None:
        self._consumer = consumer
        self._handle = handle
        self._topics = topics
        self._batch_size = batch_size
        self._poll_timeout = poll_timeout
        self._group = group
        self._span_name = span_name
        self._drain_on_stop = drain_on_stop
        self.stop_event = threading.Event()
        self.assigned = threading.Event()
        self.db_ok = True
        self.processed = 0
        self._lag_at = 0.0
        # Latest offsets handed to async commits, re-committed synchronously on close.
        self._pending_commit: dict[tuple[str, int], TopicPartition] = {}

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info(
            "partitions assigned",
            extra={"partitions": [f"{p.topic}[{p.partition}]" for p in partitions]},
        )
        self.assigned.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("partitions revoked", extra={"count": len(partitions)})
        # Settle our async commits for these partitions before their next owner starts.
        revoked = [
            self._pending_commit.pop((p.topic, p.partition))
            for p in partitions
            if (p.topic, p.partition) in self._pending_commit
        ]
        if revoked:
            with contextlib.suppress(Exception):
                consumer.commit(offsets=revoked, asynchronous=False)

    def _handle_blocking(self, msgs: list[Message]) -> bool:
        """Handle until it succeeds or we are stopped; return False if stopped first."""
        spans = (
            tracing.consumer_spans([(m.headers(), self._span_name(m)) for m in msgs])
            if tracing.enabled
            else []
        )
        try:
            return self._retry_until_done(msgs)
        finally:
            for span in spans:
                span.end()

    def _retry_until_done(self, msgs: list[Message]) -> bool:
        backoff = 0.5
        failures = 0
        while True:
            try:
                self._handle(msgs)
                if not self.db_ok:
                    log.warning("database is back; resuming", extra={"failed_attempts": failures})
                    self._consumer.resume(self._consumer.assignment())
                self.db_ok = True
                return True
            except Unavailable as e:
                failures += 1
                if self.db_ok:
                    log.error(
                        "database unavailable; blocking without committing", extra={"error": str(e)}
                    )
                    # Stay in the group (max.poll.interval) without fetching more.
                    self._consumer.pause(self._consumer.assignment())
                self.db_ok = False
                if self.stop_event.wait(backoff):
                    return False
                self._consumer.poll(0)
                backoff = min(backoff * 2, 5.0)

    def _commit(self, msgs: list[Message]) -> None:
        latest: dict[tuple[str, int], int] = {}
        for m in msgs:
            key = (str(m.topic()), int(m.partition() or 0))
            latest[key] = max(latest.get(key, -1), int(m.offset() or 0))
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in latest.items()]
        for tp in offsets:
            self._pending_commit[(tp.topic, tp.partition)] = tp
        try:
            # Asynchronous: the effects have already committed, which is all at-least-once
            # needs; librdkafka sends commits in order, and a lost one only means a harmless
            # re-delivery. close() commits synchronously at the end.
            self._consumer.commit(offsets=offsets, asynchronous=True)
        except Exception as e:
            # E.g. a rebalance took the partition: the next owner re-reads; effects are idempotent.
            log.warning("offset commit failed", extra={"error": str(e)})

    def _sample_lag(self) -> None:
        """Every few seconds: position vs. end of each assigned partition (both local: the
        end offset is the one the last fetch response reported)."""
        now = time.monotonic()
        if now - self._lag_at < LAG_INTERVAL:
            return
        self._lag_at = now
        try:
            for tp in self._consumer.position(self._consumer.assignment()):
                _, high = self._consumer.get_watermark_offsets(tp, cached=True)
                if tp.offset >= 0 and high >= 0:
                    metrics.CONSUMER_LAG.labels(self._group, tp.topic, str(tp.partition)).set(
                        max(0, high - tp.offset)
                    )
        except Exception as e:  # a metric must never stop the loop
            log.debug("could not sample consumer lag", extra={"error": str(e)})

    def _poll_batch(self) -> list[Message]:
        # consume(n, timeout) waits the whole timeout unless n messages arrive, which would
        # add up to poll_timeout of latency to every event. Wait for the first message only,
        # then take whatever else is already fetched.
        first = self._consumer.poll(self._poll_timeout)
        if first is None:
            return []
        if self._batch_size == 1:
            return [first]
        return [first, *self._consumer.consume(self._batch_size - 1, timeout=0)]

    def run(self) -> None:
        self._consumer.subscribe(
            list(self._topics), on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        try:
            while True:
                if self.stop_event.is_set() and not self._drain_on_stop:
                    break
                good: list[Message] = []
                for m in self._poll_batch():
                    err = m.error()
                    if err is None:
                        good.append(m)
                    elif err.code() != KafkaError._PARTITION_EOF:
                        log.warning("consumer error", extra={"error": err.str()})
                self._sample_lag()
                if good:
                    if not self._handle_blocking(good):
                        break
                    self._commit(good)
                    self.processed += len(good)
                elif self.stop_event.is_set():
                    # Drain: we stop once a poll comes back empty, so events published just
                    # before shutdown are handled first.
                    break
        finally:
            if self._pending_commit:
                with contextlib.suppress(Exception):
                    self._consumer.commit(
                        offsets=list(self._pending_commit.values()), asynchronous=False
                    )
            self._consumer.close()
            log.info("consumer closed", extra={"processed": self.processed})
