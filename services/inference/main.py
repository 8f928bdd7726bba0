"""Composition root for the inference service: consumer loop, checkpoint store, anomaly sink,
health and metrics (issue 18)."""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures

import grpc
from confluent_kafka import Consumer
from cornjacket.v1 import audit_pb2_grpc, inference_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.config.settings import InferenceSettings
from services.inference.cache import CachedInferenceStore
from services.inference.consumer import batch_handler
from services.inference.grpc_api import InferenceServicer
from services.inference.ingest_client import GrpcAnomalySink
from services.inference.reader import InferenceReader
from services.inference.service import Inference
from services.inference.store import PostgresInferenceStore
from services.infra import metrics, migrations
from services.infra.audit import SyncAuditLog, SyncAuditLogServicer
from services.infra.consumer_loop import ConsumerLoop
from services.infra.kafka import consumer_config, ensure_topics
from services.infra.runtime import PortInUse

log = logging.getLogger(__name__)


def _health_loop(
    loop: ConsumerLoop,
    servicer: health.HealthServicer,
    store: PostgresInferenceStore,
    stop: threading.Event,
) -> None:
    """SERVING only when the consumer has joined its group, is not blocked, and the
    database answers."""
    last: bool | None = None
    while not stop.is_set():
        ok = loop.assigned.is_set() and loop.db_ok and store.ping()
        if ok != last:
            servicer.set(
                "",
                health_pb2.HealthCheckResponse.SERVING
                if ok
                else health_pb2.HealthCheckResponse.NOT_SERVING,
            )
            last = ok
        stop.wait(1.0)


def run(settings: InferenceSettings) -> None:
    if not settings.enabled:
        log.warning("inference is turned off (CJ_FEATURE_INFERENCE=false); not starting")
        return
    migrations.apply(settings.database_url, "inference")
    ensure_topics(
        settings.common.brokers,
        settings.topics,
        settings.common.topic_partitions,
        settings.common.topic_replication,
        security=settings.common.kafka,
    )
    database = PostgresInferenceStore(settings.database_url, settings.consumer_group)
    # Model rows kept between batches; PostgreSQL stays the truth (cache.py).
    store = CachedInferenceStore(database, settings.model_cache)
    # The health monitor's own connection: the store's belongs to the consumer thread.
    probe = PostgresInferenceStore(settings.database_url, settings.consumer_group)
    sink = GrpcAnomalySink(settings.ingestion_address, settings.ingest_timeout)
    inference = Inference(
        store,
        sink,
        consumer=settings.consumer_group,
        warmup=settings.warmup,
        threshold=settings.threshold,
        max_metrics=settings.max_metrics,
    )
    loop = ConsumerLoop(
        Consumer(
            consumer_config(
                settings.common.brokers,
                settings.consumer_group,
                security=settings.common.kafka,
                fetch_linger=settings.fetch_linger,
            )
        ),
        batch_handler(inference),
        settings.topics,
        batch_size=settings.batch_size,
        poll_timeout=settings.poll_timeout,
        group=settings.consumer_group,
        span_name=lambda m: "score readings",
        fetch_linger=settings.fetch_linger,
    )
    metrics.serve(settings.host, settings.metrics_port)
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.so_reuseport", 0)]
    )
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    reader = InferenceReader(settings.database_url)
    reader.open()
    audit = SyncAuditLog(settings.database_url, "inference")
    audit.open()
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(
        InferenceServicer(reader, audit, warmup=settings.warmup, threshold=settings.threshold),
        server,
    )
    audit_pb2_grpc.add_AuditLogServiceServicer_to_server(
        SyncAuditLogServicer("inference", audit), server
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
        target=_health_loop, args=(loop, servicer, probe, stop_health), name="health", daemon=True
    )
    monitor.start()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("stopping: draining and committing", extra={"signal": signum})
        loop.stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info(
        "inference running",
        extra={
            "group": settings.consumer_group,
            "topics": list(settings.topics),
            "address": address,
            "warmup": settings.warmup,
            "threshold": settings.threshold,
        },
    )
    try:
        loop.run()
    finally:
        servicer.enter_graceful_shutdown()
        stop_health.set()
        server.stop(grace=1)
        database.close()
        probe.close()
        reader.close()
        audit.close()
        sink.close()
        log.info("inference stopped", extra={"counters": str(inference.counters)})
