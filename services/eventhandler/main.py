"""Composition root for the event handler: consumer loop, projection store, health server."""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures

import grpc
import psycopg
from cornjacket.v1 import audit_pb2_grpc, dlq_pb2_grpc, lineage_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.config.settings import EventHandlerSettings
from services.core.clock import Clock, SystemClock
from services.eventhandler.consumer import batch_handler, consumer_from, span_name
from services.eventhandler.dead_letters import DeadLetterService
from services.eventhandler.dlq_api import DeadLetterServicer
from services.eventhandler.dlq_store import PostgresDeadLetterStore
from services.eventhandler.effects_api import EventEffectsServicer
from services.eventhandler.projection_store import PostgresProjectionStore
from services.eventhandler.projectors import default_registry
from services.eventhandler.service import EventHandler
from services.infra import metrics, migrations
from services.infra.audit import SyncAuditLog, SyncAuditLogServicer
from services.infra.codec import decode_event
from services.infra.consumer_loop import ConsumerLoop
from services.infra.kafka import consumer_config, ensure_topics
from services.infra.runtime import PortInUse

log = logging.getLogger(__name__)


def _db_reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _sample_dlq(url: str) -> None:
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            rows = conn.execute(
                "SELECT consumer, count(*) FROM eventhandler.dlq WHERE status = 'pending' "
                "GROUP BY consumer"
            ).fetchall()
    except psycopg.Error:
        return
    for consumer, n in rows:
        metrics.DLQ_PENDING.labels(consumer).set(n)


def _health_loop(
    loop: ConsumerLoop, servicer: health.HealthServicer, url: str, stop: threading.Event
) -> None:
    """SERVING only when the consumer has joined its group and the database answers."""
    last: bool | None = None
    ticks = 0
    while not stop.is_set():
        ok = loop.assigned.is_set() and loop.db_ok and _db_reachable(url)
        if ok and ticks % 10 == 0:
            _sample_dlq(url)
        ticks += 1
        if ok != last:
            status = (
                health_pb2.HealthCheckResponse.SERVING
                if ok
                else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            servicer.set("", status)
            if last is not None:
                log.info("health changed", extra={"serving": ok})
            last = ok
        stop.wait(1.0)


def run(settings: EventHandlerSettings, *, clock: Clock | None = None) -> None:
    migrations.apply(settings.database_url, "eventhandler")
    # Subscribing to a topic that does not exist yet would leave us unassigned until the next
    # metadata refresh (minutes); creating it is idempotent and cheap.
    ensure_topics(
        settings.common.brokers,
        settings.topics,
        settings.common.topic_partitions,
        settings.common.topic_replication,
        security=settings.common.kafka,
    )
    store = PostgresProjectionStore(settings.database_url, settings.consumer_group)
    clock_ = clock or SystemClock()
    handler = EventHandler(store, default_registry(), clock_, consumer=settings.consumer_group)
    consumer = consumer_from(
        consumer_config(
            settings.common.brokers,
            settings.consumer_group,
            security=settings.common.kafka,
            fetch_linger=settings.fetch_linger,
        )
    )
    loop = ConsumerLoop(
        consumer,
        batch_handler(handler),
        settings.topics,
        batch_size=settings.batch_size,
        poll_timeout=settings.poll_timeout,
        group=settings.consumer_group,
        span_name=span_name,
        fetch_linger=settings.fetch_linger,
    )
    metrics.serve(settings.host, settings.metrics_port)
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.so_reuseport", 0)]
    )
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    # The DLQ API lives here: replays must run the very projectors live handling runs.
    dlq_store = PostgresDeadLetterStore(settings.database_url)
    dlq_store.open()
    audit = SyncAuditLog(settings.database_url, "eventhandler")
    audit.open()
    dlq_pb2_grpc.add_DeadLetterServiceServicer_to_server(
        DeadLetterServicer(
            DeadLetterService(dlq_store, default_registry(), decode_event, clock_.now), audit
        ),
        server,
    )
    audit_pb2_grpc.add_AuditLogServiceServicer_to_server(
        SyncAuditLogServicer("eventhandler", audit), server
    )
    lineage_pb2_grpc.add_EventEffectsServiceServicer_to_server(
        EventEffectsServicer(default_registry(), dlq_store), server
    )
    address = f"{settings.host}:{settings.port}"
    try:
        if server.add_insecure_port(address) == 0:
            raise PortInUse(f"cannot listen on {address}: the port is in use")
    except RuntimeError as e:
        raise PortInUse(f"cannot listen on {address}: {e}") from e
    server.start()
    stop_health = threading.Event()
    monitor = threading.Thread(
        target=_health_loop,
        args=(loop, servicer, settings.database_url, stop_health),
        name="health",
        daemon=True,
    )
    monitor.start()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("stopping: draining and committing", extra={"signal": signum})
        loop.stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info(
        "event handler running",
        extra={
            "group": settings.consumer_group,
            "topics": list(settings.topics),
            "health": address,
        },
    )
    try:
        loop.run()
    finally:
        servicer.enter_graceful_shutdown()
        stop_health.set()
        server.stop(grace=1)
        store.close()
        dlq_store.close()
        audit.close()
        log.info("event handler stopped")
