"""Kafka-protocol adapters (confluent-kafka): topic creation, the publisher, consumer config."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from opentelemetry.trace import Span, SpanKind

from services.core.errors import Unavailable
from services.core.events import Event, Publication, topic_for
from services.infra import tracing
from services.infra.codec import encode_event

log = logging.getLogger(__name__)


def ensure_topics(
    brokers: str,
    topics: Sequence[str],
    partitions: int,
    replication: int = 1,
    timeout: float = 15,
) -> None:
    """Create missing topics; existing ones are left as they are. Raises Unavailable."""
    admin = AdminClient({"bootstrap.servers": brokers, "socket.timeout.ms": int(timeout * 1000)})
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as e:
        raise Unavailable(f"broker {brokers} unreachable: {e}") from e
    missing = [t for t in topics if t not in existing]
    if not missing:
        return
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=partitions, replication_factor=replication) for t in missing],
        operation_timeout=timeout,
    )
    for topic, fut in futures.items():
        try:
            fut.result(timeout=timeout)
            log.info("created topic", extra={"topic": topic, "partitions": partitions})
        except KafkaException as e:
            if e.args and e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise Unavailable(f"cannot create topic {topic}: {e}") from e


class _Delivery:
    """One publish() call's messages: their delivery reports are collected in the delivery
    thread and the waiting coroutine is woken once, when the last report is in (a wake-up
    per message cost the relay a loop round and a self-pipe write per event)."""

    def __init__(self, events: Sequence[Event], loop: asyncio.AbstractEventLoop) -> None:
        self._ids = [e.event_id for e in events]
        self._results: list[Publication | None] = [None] * len(events)
        self._error = ""
        self._pending = len(events)
        self._lock = threading.Lock()
        self._loop = loop
        self.done: asyncio.Future[list[Publication]] = loop.create_future()
        if not events:
            self.done.set_result([])

    def delivered(self, i: int, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            self.failed(i, f"broker did not acknowledge: {err.str()}")
            return
        self._results[i] = Publication(self._ids[i], msg.topic(), msg.partition(), msg.offset())
        self._settle_one()

    def failed(self, i: int, error: str) -> None:
        with self._lock:
            self._error = self._error or error
        self._settle_one()

    def _settle_one(self) -> None:
        with self._lock:
            self._pending -= 1
            last = self._pending == 0
        if last:
            self._loop.call_soon_threadsafe(self._finish)

    def _finish(self) -> None:
        if self.done.done():
            return
        if self._error:
            self.done.set_exception(Unavailable(self._error))
        else:
            self.done.set_result([r for r in self._results if r is not None])


class KafkaPublisher:
    """Idempotent producer (acks=all); publish() resolves when every message is acked.

    A background thread serves librdkafka's delivery callbacks and hands results to the
    asyncio loop, so concurrent publish() calls wait only for their own messages.
    close() flushes what is still queued (bounded by ``flush_timeout``).
    """

    def __init__(self, brokers: str, *, extra: dict[str, Any] | None = None) -> None:
        config: dict[str, Any] = {
            "bootstrap.servers": brokers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,
            "compression.type": "none",
            "message.timeout.ms": 10_000,
            "socket.keepalive.enable": True,
        }
        config.update(extra or {})
        self._producer = Producer(config)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="kafka-delivery", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    async def publish(self, events: Sequence[Event]) -> list[Publication]:
        batch = _Delivery(events, asyncio.get_running_loop())
        spans: list[Span] = []
        for i, ev in enumerate(events):
            headers: list[tuple[str, str | bytes | None]] = [("event_type", ev.event_type.encode())]
            if ev.metadata.trace_id:
                headers.append(("trace_id", ev.metadata.trace_id.encode()))
            if tracing.enabled and ev.metadata.span_id:
                # A producer span per event, child of the span that accepted it; consumers
                # continue from the traceparent header.
                span = tracing.tracer().start_span(
                    f"publish {topic_for(ev.event_type)}",
                    context=tracing.parent_of(ev.metadata.trace_id, ev.metadata.span_id),
                    kind=SpanKind.PRODUCER,
                    attributes={"event_id": ev.event_id},
                )
                spans.append(span)
                headers.append(("traceparent", tracing.traceparent(span)))
            while True:
                try:
                    self._producer.produce(
                        topic_for(ev.event_type),
                        key=ev.aggregate_id.encode(),
                        value=encode_event(ev),
                        headers=headers,
                        on_delivery=functools.partial(batch.delivered, i),
                    )
                    break
                except BufferError:
                    await asyncio.sleep(0.01)  # local queue full; the delivery thread drains it
                except KafkaException as e:
                    batch.failed(i, f"cannot produce: {e}")
                    break
        try:
            return await batch.done
        finally:
            for span in spans:
                span.end()

    def close(self, flush_timeout: float = 10) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        remaining = self._producer.flush(flush_timeout)
        if remaining:
            log.warning("producer closed with unacknowledged messages", extra={"count": remaining})


def consumer_config(brokers: str, group: str, **extra: Any) -> dict[str, Any]:
    """Consumer settings: manual commits after processing; quick group joins on small clusters."""
    config: dict[str, Any] = {
        "bootstrap.servers": brokers,
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        # librdkafka's 45 s default makes a group join take ~23 s against the embedded broker.
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        # The embedded broker does not answer a parked fetch when data arrives; a short
        # wait bounds the latency that adds.
        "fetch.wait.max.ms": 10,
        "max.poll.interval.ms": 300_000,
    }
    config.update(extra)
    return config
