"""Composition root for the query service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from cornjacket.v1 import (
    audit_pb2_grpc,
    lineage_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
    stats_pb2_grpc,
    watch_pb2_grpc,
)

from services.config.settings import QuerySettings
from services.core.aio import wait_event
from services.core.clock import SystemClock
from services.infra import metrics
from services.infra.postgres import Availability, DictPool, open_pool, ping
from services.infra.reflection import add_reflection
from services.infra.runtime import Health, install_stop_signals, make_server, watch
from services.query.audit import AuditLog
from services.query.grpc_api import AuditServicer, LineageServicer, QueryServicer, WatchServicer
from services.query.lineage import LineageService
from services.query.lineage_clients import (
    GrpcAnomalies,
    GrpcAuditSource,
    GrpcEffects,
    GrpcRecords,
    GrpcWebhooks,
)
from services.query.projection_reader import PostgresProjectionReader
from services.query.service import QueryService
from services.query.stats import StatsService
from services.query.stats_api import (
    BusLag,
    GrpcFailedDeliveries,
    GrpcIngestStats,
    GrpcPendingDeadLetters,
    StatsServicer,
)
from services.query.watch import ProjectionFeed, WatchHub
from services.query.watch_bus import GroupOffsets, KafkaBusOpener

log = logging.getLogger(__name__)

SERVICE_NAME = query_pb2.DESCRIPTOR.services_by_name["QueryService"].full_name


async def run(settings: QuerySettings, *, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        install_stop_signals(stop)
    health = Health([SERVICE_NAME])
    await health.set(False, "starting")
    metrics.serve(settings.host, settings.metrics_port)
    async with open_pool(
        settings.database_url,
        max_size=settings.pool_size,
        acquire_timeout=settings.db_timeout,
        name="query",
    ) as pool:
        server = make_server(settings.host, settings.port, health)
        records = GrpcRecords(settings.ingestion_address)
        effects = GrpcEffects(settings.eventhandler_address)
        webhooks = GrpcWebhooks(settings.actions_address)
        # issue 18: lineage names the anomalies a reading caused; off with the feature.
        anomalies = (
            GrpcAnomalies(settings.inference_address) if settings.inference_address else None
        )
        lineage_pb2_grpc.add_LineageServiceServicer_to_server(
            LineageServicer(LineageService(records, effects, webhooks, anomalies)), server
        )
        audit_sources = [
            GrpcAuditSource("actions", settings.actions_address),
            GrpcAuditSource("eventhandler", settings.eventhandler_address),
        ]
        if settings.inference_address:
            audit_sources.append(GrpcAuditSource("inference", settings.inference_address))
        audit_pb2_grpc.add_AuditServiceServicer_to_server(
            AuditServicer(AuditLog(list(audit_sources))), server
        )
        # Live streams (issue 19): watchers end with a WatchEnd before the server stops.
        watch_stop = asyncio.Event()
        query = QueryService(
            PostgresProjectionReader(pool),
            health_window=timedelta(seconds=settings.device_health_window),
        )
        applied = GroupOffsets(
            settings.common.brokers,
            settings.watch.handler_group,
            settings.common.kafka,
            settings.watch.handler_topics,
        )
        hub = WatchHub(
            KafkaBusOpener(
                settings.common.brokers,
                settings.common.kafka,
                fetch_linger=settings.watch.fetch_linger,
            ),
            projections=ProjectionFeed(query, applied, frozenset(settings.watch.handler_topics)),
            max_watchers=settings.watch.max_watchers,
            max_per_subject=settings.watch.max_per_subject,
            max_lag=settings.watch.max_lag,
            send_timeout=settings.watch.send_timeout,
            heartbeat=settings.watch.heartbeat,
            max_duration=settings.watch.max_duration,
        )
        watch_pb2_grpc.add_WatchServiceServicer_to_server(WatchServicer(hub, watch_stop), server)
        query_pb2_grpc.add_QueryServiceServicer_to_server(QueryServicer(query), server)
        # The console overview's figures (issue 19): asked of the owners and the bus.
        ingest_stats = GrpcIngestStats(settings.ingestion_address)
        pending = GrpcPendingDeadLetters(settings.eventhandler_address)
        failed = GrpcFailedDeliveries(settings.actions_address)
        bus_lag = BusLag(settings.common.brokers, settings.common.kafka, settings.stats_groups)
        stats_pb2_grpc.add_StatsServiceServicer_to_server(
            StatsServicer(
                StatsService(
                    ingest_stats,
                    {
                        "dead_letters_pending": ("eventhandler", pending),
                        "deliveries_failed": ("actions", failed),
                    },
                    bus_lag,
                    SystemClock(),
                    max_age=settings.stats_cache,
                )
            ),
            server,
        )
        # Reflection of every public service, for the edge (issue 19, ADR 22).
        add_reflection(server)
        await server.start()
        monitor = asyncio.create_task(_monitor(pool, health, stop), name="health-monitor")
        log.info("query serving", extra={"address": f"{settings.host}:{settings.port}"})
        try:
            await watch([monitor], stop)
        finally:
            await health.set(False, "shutting down")
            watch_stop.set()
            await server.stop(grace=5)
            stop.set()
            await asyncio.wait([monitor], timeout=3)
            applied.close()
            await records.close()
            await effects.close()
            await webhooks.close()
            if anomalies is not None:
                await anomalies.close()
            for source in audit_sources:
                await source.close()
            for client in (ingest_stats, pending, failed):
                await client.close()
            await bus_lag.close()
            log.info("query stopped")


async def _monitor(pool: DictPool, health: Health, stop: asyncio.Event) -> None:
    availability = Availability()
    while not stop.is_set():
        # Ready only once the handler's projections table exists: we read it.
        ok = await ping(pool, probe="SELECT 1 FROM eventhandler.projections LIMIT 0")
        await availability.observe(pool, ok)
        await health.set(ok, "" if ok else "database unreachable")
        await wait_event(stop, 1.0)
