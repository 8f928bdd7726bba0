"""Kafka consumer for the orchestrator: events in, durable delivery jobs out, then commit.

Matching is cheap and the jobs are written to PostgreSQL before the offsets are committed,
so a slow or dead webhook endpoint never holds a partition: sending happens later, in the
delivery workers. A re-delivered event hits the (rule_id, event_id) key and makes no second
job. While the database is down the loop blocks on the same batch (partitions paused,
nothing committed) and resumes by itself.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from services.actions.ports import JobSink
from services.actions.service import match_events
from services.core.clock import Clock
from services.core.errors import Unavailable
from services.core.events import Event
from services.infra import metrics, tracing
from services.infra.codec import DecodeError, decode_event

log = logging.getLogger(__name__)


class JobPlanner:
    """Turns a polled batch into jobs: undecodable messages are logged and skipped (the
    event handler keeps poison messages in its DLQ); rules are read per batch so a new
    rule applies to the next event without a cache to invalidate."""

    def __init__(
        self, sink: JobSink, clock: Clock, new_id: Callable[[], str], dedupe_window: float
    ) -> None:
        self._sink = sink
        self._clock = clock
        self._new_id = new_id
        self._dedupe_window = dedupe_window
        self.jobs = 0

    def handle(self, raws: list[bytes]) -> int:
        events: list[Event] = []
        for raw in raws:
            try:
                events.append(decode_event(raw))
            except DecodeError as e:
                log.warning("skipping an undecodable message", extra={"error": str(e)})
        if not events:
            return 0
        rules = self._sink.enabled_rules()
        jobs = match_events(rules, events, self._new_id)
        created = self._sink.enqueue(jobs, self._clock.now(), self._dedupe_window)
        metrics.WEBHOOK_JOBS.inc(created)
        self.jobs += created
        return created


class ConsumerLoop:
    def __init__(
        self,
        consumer: Consumer,
        planner: JobPlanner,
        topics: tuple[str, ...],
        *,
        batch_size: int,
        poll_timeout: float,
    ) -> None:
        self._consumer = consumer
        self._planner = planner
        self._topics = topics
        self._batch_size = batch_size
        self._poll_timeout = poll_timeout
        self.stop_event = threading.Event()
        self.assigned = threading.Event()
        self.db_ok = True
        self.processed = 0
        self._pending_commit: dict[tuple[str, int], TopicPartition] = {}

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info(
            "partitions assigned",
            extra={"partitions": [f"{p.topic}[{p.partition}]" for p in partitions]},
        )
        self.assigned.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = [
            self._pending_commit.pop((p.topic, p.partition))
            for p in partitions
            if (p.topic, p.partition) in self._pending_commit
        ]
        if revoked:
            with contextlib.suppress(Exception):
                consumer.commit(offsets=revoked, asynchronous=False)

    def _handle_blocking(self, msgs: list[Message]) -> bool:
        """Write the batch's jobs until it succeeds or we are stopped (False if stopped)."""
        raws = [m.value() or b"" for m in msgs]
        spans = (
            tracing.consumer_spans([(m.headers(), "match rules") for m in msgs])
            if tracing.enabled
            else []
        )
        try:
            return self._write_jobs(raws)
        finally:
            for span in spans:
                span.end()

    def _write_jobs(self, raws: list[bytes]) -> bool:
        backoff = 0.5
        while True:
            try:
                self._planner.handle(raws)
                if not self.db_ok:
                    log.warning("database is back; consuming again")
                    self._consumer.resume(self._consumer.assignment())
                self.db_ok = True
                return True
            except Unavailable as e:
                if self.db_ok:
                    log.error(
                        "database unavailable; blocking without committing", extra={"error": str(e)}
                    )
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
            # The jobs are committed in PostgreSQL already; a lost async commit only means a
            # re-delivery, which the (rule_id, event_id) key absorbs.
            self._consumer.commit(offsets=offsets, asynchronous=True)
        except Exception as e:
            log.warning("offset commit failed", extra={"error": str(e)})

    def _poll_batch(self) -> list[Message]:
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
            while not self.stop_event.is_set():
                good: list[Message] = []
                for m in self._poll_batch():
                    err = m.error()
                    if err is None:
                        good.append(m)
                    elif err.code() != KafkaError._PARTITION_EOF:
                        log.warning("consumer error", extra={"error": err.str()})
                if good:
                    if not self._handle_blocking(good):
                        break
                    self._commit(good)
                    self.processed += len(good)
        finally:
            if self._pending_commit:
                with contextlib.suppress(Exception):
                    self._consumer.commit(
                        offsets=list(self._pending_commit.values()), asynchronous=False
                    )
            self._consumer.close()
            log.info("consumer closed", extra={"processed": self.processed})
