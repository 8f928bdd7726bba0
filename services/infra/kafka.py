"""Kafka-protocol adapters (confluent-kafka): topic creation, the publisher, consumer config."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)
from opentelemetry.trace import Span, SpanKind

from services.config.settings import MIN_FETCH_LINGER, KafkaSecurity
from services.core.errors import ConfigError, InvalidInput, Unavailable
from services.core.events import Event, PartlyPublished, Publication, topic_for
from services.infra import tracing
from services.infra.codec import encode_event

log = logging.getLogger(__name__)

# How big one event's bus message can get. The envelope carries the payload as a protobuf
# Struct, which can be 5.5 times the payload's JSON text (a list of one-digit numbers: 2
# bytes of JSON, 11 of protobuf each); everything else (ids, type, aggregate_id, trace and
# span ids, timestamps; the key and headers) is bounded by validation's field limits to a
# few KiB, so 64 KiB covers it and Kafka's record overhead with room to spare.
PAYLOAD_GROWTH = 5.5
ENVELOPE_OVERHEAD = 64 * 1024
# librdkafka packs the messages of one partition into record batches up to batch.size (a
# first message larger than that goes alone); the broker checks its limit per record batch.
# Kafka's and Redpanda's default limit is 1 MiB, and the topics' limit is never lower: ingestion
# refuses to start unless every topic's max.message.bytes covers both batch.size and the
# producer's message.max.bytes plus a record batch's framing (ensure_topics). So a batch of
# several events is never refused for its size, and a refusal is always of one message alone.
BATCH_BYTES = 1_000_000
BROKER_DEFAULT_LIMIT = 1024 * 1024
# A record batch's header (61 bytes in format v2) above librdkafka's own per-message size,
# with room to spare: the producer's message.max.bytes is the topics' limit minus this.
RECORD_BATCH_OVERHEAD = 1024

# The producer's local message timeout: librdkafka reports every message it queued by then
# (a produce request's own timeout is its oldest message's). The relay's bounds on one batch
# follow from it, here only:
MESSAGE_TIMEOUT = 10.0
# - how long publish() waits for room in a full local queue before it gives up the rest;
QUEUE_WAIT = 2.0
# - the relay's asyncio bound on a batch's whole publish phase (queueing + every report;
#   librdkafka's timeout scanner runs about once a second);
RELAY_PUBLISH_TIMEOUT = QUEUE_WAIT + MESSAGE_TIMEOUT + 2.0
# - the database's bound on the batch transaction sitting idle while it publishes
#   (idle_in_transaction_session_timeout, for a relay whose host vanished): well above the
#   relay's own, so that the relay rolls back itself before its slots are taken from it.
RELAY_SESSION_TIMEOUT = RELAY_PUBLISH_TIMEOUT + 8.0
# The largest payload CJ_INGESTION_MAX_PAYLOAD_BYTES allows: what a publisher that does not
# know the setting (republish) must be able to carry.
LARGEST_PAYLOAD = 4 * 1024 * 1024

# Errors that belong to one message and will not change on a retry (the producer refuses
# it as it is, before queueing it); every other error is an outage of the bus: Unavailable.
# The broker reports these for a whole record batch, which may hold other messages: a
# delivery report with one of them is held back (not acknowledged), never a poison row.
PERMANENT_ERRORS = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,  # over message.max.bytes, local or the topic's
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_MSG,  # CORRUPT_MESSAGE
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.INVALID_RECORD,
    }
)


PLAINTEXT = KafkaSecurity()


def client_config(brokers: str, security: KafkaSecurity) -> dict[str, Any]:
    """What every client (producer, consumer, admin, lag probe) starts from: the brokers and
    how to reach them (CJ_KAFKA_*: TLS, SASL). Every client config is built on this one.
    Raises ConfigError for a bus without TLS and SASL under CJ_ENVIRONMENT=production."""
    if security.production and security.protocol != "sasl_ssl":
        raise ConfigError(
            f"CJ_KAFKA_SECURITY_PROTOCOL={security.protocol} with CJ_ENVIRONMENT=production: "
            "anything that reaches the brokers could read or inject events; use sasl_ssl"
        )
    config: dict[str, Any] = {
        "bootstrap.servers": brokers,
        "security.protocol": security.protocol,
    }
    if security.sasl:
        config["sasl.mechanism"] = security.mechanism
        config["sasl.username"] = security.username
        config["sasl.password"] = security.password
    if security.tls:
        # librdkafka verifies the broker's certificate and host name by default; say so
        # rather than rely on a default another version might change.
        config["enable.ssl.certificate.verification"] = True
        config["ssl.endpoint.identification.algorithm"] = "https"
        if security.ca_location is not None:
            config["ssl.ca.location"] = str(security.ca_location)
    return config


def message_limit(max_payload_bytes: int) -> int:
    """The largest bus message an event with a payload of ``max_payload_bytes`` (JSON) can
    make: the producer's message.max.bytes and the topics' max.message.bytes. Never below
    the brokers' 1 MiB default (see BATCH_BYTES)."""
    return max(int(max_payload_bytes * PAYLOAD_GROWTH) + ENVELOPE_OVERHEAD, BROKER_DEFAULT_LIMIT)


def ensure_topics(
    brokers: str,
    topics: Sequence[str],
    partitions: int,
    replication: int = 1,
    timeout: float = 15,
    *,
    max_message_bytes: int | None = None,
    security: KafkaSecurity = PLAINTEXT,
) -> None:
    """Create missing topics; existing ones keep their partitions. Raises Unavailable.

    With ``max_message_bytes`` new topics get it as ``max.message.bytes`` (the per-topic
    limit Kafka and Redpanda apply instead of their 1 MiB cluster default), and an existing
    topic that reports a lower limit is raised to it: the event handler and the orchestrator
    create the same topics without a limit when they start first. If that fails (no
    permission), raises ConfigError naming the topic and both limits: the relay's producer
    would build record batches the broker refuses as a whole (ADR 18). A broker that does
    not report topic limits is not checked.
    """
    admin = AdminClient(
        client_config(brokers, security) | {"socket.timeout.ms": int(timeout * 1000)}
    )
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as e:
        raise Unavailable(f"broker {brokers} unreachable: {e}") from e
    missing = [t for t in topics if t not in existing]
    present = [t for t in topics if t in existing]
    config = {} if max_message_bytes is None else {"max.message.bytes": str(max_message_bytes)}
    new = [NewTopic(t, partitions, replication, config=config) for t in missing]
    futures = admin.create_topics(new, operation_timeout=timeout) if new else {}
    for topic, fut in futures.items():
        try:
            fut.result(timeout=timeout)
            log.info("created topic", extra={"topic": topic, "partitions": partitions})
        except KafkaException as e:
            if e.args and e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                present.append(topic)  # another service created it meanwhile
                continue
            raise Unavailable(f"cannot create topic {topic}: {e}") from e
    if max_message_bytes is not None and present:
        _raise_low_limits(admin, present, max_message_bytes, timeout)


# Answers to DescribeConfigs: a broker without the API (nothing to check: it enforces no
# per-topic limit we could read), a refusal (a ConfigError: ingestion cannot know whether the
# topic's limit covers its record batches), and everything else taken as transient (retried a
# few times, then Unavailable). Tansu answers the API with only the configs a topic was
# created with: a topic without max.message.bytes reports no limit and is not checked.
UNSUPPORTED_ERRORS = frozenset({KafkaError._UNSUPPORTED_FEATURE, KafkaError.UNSUPPORTED_VERSION})
DENIED_ERRORS = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError._AUTHENTICATION,
    }
)
DESCRIBE_ATTEMPTS = 3


def _error_code(e: BaseException) -> int | None:
    if isinstance(e, KafkaException) and e.args and isinstance(e.args[0], KafkaError):
        return int(e.args[0].code())
    return None


def _raise_low_limits(
    admin: AdminClient, topics: Sequence[str], needed: int, timeout: float
) -> None:
    """Read every topic's max.message.bytes (each answer on its own) and raise those below
    ``needed``. Topics found low are raised whatever the other answers were; then a refused
    read raises ConfigError and one still failing after DESCRIBE_ATTEMPTS (each bounded by
    ``timeout``) Unavailable. Only a broker without DescribeConfigs is skipped."""
    low: list[tuple[str, int]] = []
    denied: dict[str, BaseException] = {}
    failing: dict[str, BaseException] = {}
    unsupported: list[str] = []
    pending = list(topics)
    for _ in range(DESCRIBE_ATTEMPTS):
        if not pending:
            break
        failing = {}
        deadline = time.monotonic() + timeout
        try:
            futures = admin.describe_configs(
                [ConfigResource("topic", t) for t in pending], request_timeout=timeout
            )
        except Exception as e:  # the request could not be made at all
            failing = dict.fromkeys(pending, e)
            continue
        for resource, fut in futures.items():
            try:
                configs = fut.result(timeout=max(deadline - time.monotonic(), 0.0))
            except Exception as e:
                code = _error_code(e)
                if code in UNSUPPORTED_ERRORS:
                    unsupported.append(resource.name)
                elif code in DENIED_ERRORS:
                    denied[resource.name] = e
                else:  # a timeout, a broker gone: transient
                    failing[resource.name] = e
                continue
            entry = configs.get("max.message.bytes")
            # A broker that reports no limit (Tansu, for a topic created without one) has none.
            if entry is not None and entry.value and int(entry.value) < needed:
                low.append((resource.name, int(entry.value)))
        pending = list(failing)
    if unsupported:
        log.warning(
            "broker does not describe topic configs: their message limit is not checked",
            extra={"topics": ",".join(unsupported)},
        )
    for topic, limit in low:
        change = ConfigResource(
            "topic",
            topic,
            incremental_configs=[
                ConfigEntry(
                    "max.message.bytes", str(needed), incremental_operation=AlterConfigOpType.SET
                )
            ],
        )
        try:
            for fut in admin.incremental_alter_configs([change]).values():
                fut.result(timeout=timeout)
            log.info(
                "raised topic's message limit",
                extra={"topic": topic, "max_message_bytes": needed, "was": limit},
            )
        except Exception as e:
            raise ConfigError(
                f"topic {topic} has max.message.bytes={limit}, below the {needed} the relay's "
                f"producer needs (its message.max.bytes {needed - RECORD_BATCH_OVERHEAD} plus "
                f"a record batch's framing, and batch.size {BATCH_BYTES}), and it cannot be "
                f"raised ({e}): the broker would refuse whole record batches. Raise it: rpk "
                f"topic alter-config {topic} --set max.message.bytes={needed}, or "
                "kafka-configs.sh --alter; or grant ingestion AlterConfigs on the topics"
            ) from e
    if denied:
        refusal = next(iter(denied.values()))
        raise ConfigError(
            f"cannot read the max.message.bytes of topic(s) {', '.join(denied)} ({refusal}): "
            f"ingestion needs at least {needed} to publish its record batches. Grant "
            "ingestion DescribeConfigs (and AlterConfigs) on the topics"
        ) from refusal
    if failing:
        failure = next(iter(failing.values()))
        raise Unavailable(
            f"cannot read the max.message.bytes of topic(s) {', '.join(failing)} after "
            f"{DESCRIBE_ATTEMPTS} attempts: {failure}"
        ) from failure


class _Delivery:
    """One publish() call's messages: their delivery reports are collected in the delivery
    thread and the waiting coroutine is woken once, when the last report is in (a wake-up
    per message cost the relay a loop round and a self-pipe write per event).

    A message the producer refuses for good (PERMANENT_ERRORS, before queueing) gets an
    InvalidInput in its place; one not acknowledged (any other failure, or a refusal by the
    broker, which concerns its whole record batch) an Unavailable, and the call raises
    PartlyPublished with every message's entry."""

    def __init__(self, events: Sequence[Event], loop: asyncio.AbstractEventLoop) -> None:
        self._ids = [e.event_id for e in events]
        self._results: list[Publication | InvalidInput | Unavailable | None] = [None] * len(events)
        self._pending = len(events)
        self._lock = threading.Lock()
        self._loop = loop
        self.done: asyncio.Future[list[Publication | InvalidInput]] = loop.create_future()
        if not events:
            self.done.set_result([])

    def delivered(self, i: int, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            if err.code() in PERMANENT_ERRORS:
                # The broker refused the record batch holding this message; it may be the
                # batch, not the message (a topic's limit lowered since ingestion started).
                self.failed(
                    i,
                    f"broker refused the record batch holding the message: {err.str()} "
                    "(held back, not set aside: was the topic's max.message.bytes lowered?)",
                )
            else:
                self.failed(i, f"broker did not acknowledge: {err.str()}")
            return
        self._results[i] = Publication(self._ids[i], msg.topic(), msg.partition(), msg.offset())
        self._settle_one()

    def refused(self, i: int, error: str) -> None:
        """This message can never be published as it is (its batch-mates are unaffected)."""
        self._results[i] = InvalidInput(error)
        self._settle_one()

    def failed(self, i: int, error: str) -> None:
        """This message was not acknowledged (it may or may not be on the bus)."""
        self._results[i] = Unavailable(error)
        self._settle_one()

    def _settle_one(self) -> None:
        with self._lock:
            self._pending -= 1
            last = self._pending == 0
        if last:
            self._loop.call_soon_threadsafe(self._finish)

    def _finish(self) -> None:
        if self.done.done():  # cancelled: the relay gave up waiting (its publish bound)
            return
        results = [r for r in self._results if r is not None]
        failed = [r for r in results if isinstance(r, Unavailable)]
        if failed:
            self.done.set_exception(
                PartlyPublished(
                    f"{len(failed)} of {len(results)} not acknowledged: {failed[0]}", results
                )
            )
        else:
            self.done.set_result([r for r in results if not isinstance(r, Unavailable)])


class KafkaPublisher:
    """Idempotent producer (acks=all); publish() resolves when every message is settled:
    with a Publication per acknowledged message and an InvalidInput in the place of one
    refused for good (too large, invalid: see PERMANENT_ERRORS), or Unavailable when any
    message failed otherwise (a broker outage; some may have been published).

    ``max_message_bytes`` is librdkafka's message.max.bytes: give it
    ``message_limit(CJ_INGESTION_MAX_PAYLOAD_BYTES)``. The default fits the largest payload
    limit ingestion allows, so a publisher that does not know the setting (republish)
    carries anything ingestion accepted.

    A background thread serves librdkafka's delivery callbacks and hands results to the
    asyncio loop, so concurrent publish() calls wait only for their own messages.
    close() flushes what is still queued (bounded by ``flush_timeout``).
    """

    def __init__(
        self,
        brokers: str,
        *,
        max_message_bytes: int | None = None,
        extra: dict[str, Any] | None = None,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        config: dict[str, Any] = {
            **client_config(brokers, security),
            # Per-partition order survives retries (ADR 18): the idempotent producer
            # (sequence numbers per partition) with at most 5 requests in flight, the limit
            # under which librdkafka keeps order; the key (aggregate_id) picks the partition.
            "enable.idempotence": True,
            "max.in.flight.requests.per.connection": 5,
            "acks": "all",
            "linger.ms": 2,
            "compression.type": "none",
            "message.timeout.ms": int(MESSAGE_TIMEOUT * 1000),
            "socket.keepalive.enable": True,
            "message.max.bytes": max_message_bytes or message_limit(LARGEST_PAYLOAD),
            "batch.size": BATCH_BYTES,
        }
        config.update(extra or {})
        self._producer = Producer(config)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="kafka-delivery", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    async def publish(self, events: Sequence[Event]) -> list[Publication | InvalidInput]:
        loop = asyncio.get_running_loop()
        batch = _Delivery(events, loop)
        spans: list[Span] = []
        queue_deadline: float | None = None
        held: set[str] = set()  # aggregates with a message that could not be queued
        for i, ev in enumerate(events):
            if queue_deadline is not None and loop.time() > queue_deadline:
                # The local queue stayed full: give up the rest, not queued (not sent).
                batch.failed(i, f"local producer queue full for {QUEUE_WAIT}s")
                continue
            if ev.aggregate_id in held:
                # Never queue an event behind an earlier one of its aggregate that failed.
                batch.failed(i, "held back: an earlier event of its aggregate was not queued")
                continue
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
                    queue_deadline = None  # queued: the next full queue gets its own wait
                    break
                except BufferError:
                    # Local queue full; the delivery thread drains it. Bounded: the relay's
                    # publish bound counts on it.
                    queue_deadline = queue_deadline or loop.time() + QUEUE_WAIT
                    if loop.time() > queue_deadline:
                        batch.failed(i, f"local producer queue full for {QUEUE_WAIT}s")
                        break
                    await asyncio.sleep(0.01)
                except KafkaException as e:
                    err = e.args[0] if e.args and isinstance(e.args[0], KafkaError) else None
                    if err is not None and err.code() in PERMANENT_ERRORS:
                        # librdkafka checks the size before queueing: nothing was sent.
                        batch.refused(i, f"cannot produce, refused for good: {err.str()}")
                    else:
                        batch.failed(i, f"cannot produce: {e}")
                        held.add(ev.aggregate_id)
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


# The fetch linger (ADR 23): how long the broker may hold a consumer's fetch to answer it
# with everything that arrived meanwhile. 0 keeps the short wait of a latency-critical
# consumer: the broker answers at once (min bytes 1) or, with nothing to give, after
# FETCH_WAIT, so an idle consumer asks ~100 times a second per broker. A linger L > 0 sets
# fetch.wait.max.ms = L and a fetch.min.bytes no fetch of a small event reaches by itself,
# so the broker (Kafka, Redpanda, Tansu alike) holds the fetch up to L and answers with the
# batch gathered: an idle consumer asks 1/L times a second, and a consumer at a moderate
# rate gets batches L long (one database transaction each) instead of 2-4 events.
FETCH_WAIT = MIN_FETCH_LINGER  # also the least linger the settings accept
# librdkafka allows fetch.min.bytes 1..100,000,000 and checks it against nothing; a broker
# answers a fetch with at most fetch.max.bytes (50 MiB) and max.partition.fetch.bytes
# (1 MiB) per partition, so the min is kept below both (a min the answer could never reach
# would only ever end on the wait, which is still bounded by L).
LINGER_MIN_BYTES = 1_000_000
FETCH_MAX_BYTES = 52_428_800  # librdkafka's default fetch.max.bytes
PARTITION_FETCH_BYTES = 1_048_576  # librdkafka's default max.partition.fetch.bytes
# A fetch's answer reaches the consumer's queue at most two fetch waits after a message
# was stored (the message may land just after the broker built the answer in flight; the
# next fetch brings it), plus this margin for a busy machine.
DRAIN_MARGIN = 0.5


def fetch_wait(linger: float) -> float:
    """The broker-side wait of a consumer with this linger (seconds)."""
    return linger if linger > 0 else FETCH_WAIT


def drain_wait(linger: float) -> float:
    """How long a poll must come back empty before a stopping consumer may take it that
    everything stored before it stopped has been fetched (ConsumerLoop's drain on stop)."""
    return 2 * fetch_wait(linger) + DRAIN_MARGIN


def consumer_config(
    brokers: str,
    group: str,
    *,
    security: KafkaSecurity = PLAINTEXT,
    fetch_linger: float = 0.0,
    **extra: Any,
) -> dict[str, Any]:
    """Consumer settings: manual commits after processing; quick group joins on small
    clusters; the broker holds a fetch up to ``fetch_linger`` seconds to batch (0: answer
    at once). Raises ConfigError for a negative linger."""
    if fetch_linger < 0:
        raise ConfigError(f"fetch linger {fetch_linger}s is negative")
    config: dict[str, Any] = {
        **client_config(brokers, security),
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        # librdkafka's 45 s default makes a group join take ~23 s against the embedded broker.
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        # The embedded broker does not answer a parked fetch when data arrives; a short
        # wait bounds the latency that adds. A linger makes the wait the point.
        "fetch.wait.max.ms": max(1, round(fetch_wait(fetch_linger) * 1000)),
        "max.poll.interval.ms": 300_000,
    }
    config.update(extra)
    if fetch_linger > 0:
        config["fetch.min.bytes"] = min(
            LINGER_MIN_BYTES,
            int(config.get("fetch.max.bytes", FETCH_MAX_BYTES)),
            int(config.get("max.partition.fetch.bytes", PARTITION_FETCH_BYTES)),
        )
    return config
