"""Composition root for the ingestion service (gRPC API + outbox relay) and the relay alone."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import uuid_utils
from cornjacket.v1 import ingestion_pb2, ingestion_pb2_grpc, lineage_pb2_grpc, stats_pb2_grpc

from services.config.settings import IngestionSettings
from services.core.aio import wait_event
from services.core.clock import Clock, SystemClock
from services.core.errors import Unavailable
from services.core.events import ALL_TOPICS
from services.infra import metrics, migrations
from services.infra.kafka import (
    RECORD_BATCH_OVERHEAD,
    RELAY_PUBLISH_TIMEOUT,
    KafkaPublisher,
    ensure_topics,
    message_limit,
)
from services.infra.postgres import Availability, DictPool, open_pool, ping
from services.infra.runtime import Health, install_stop_signals, make_server, watch
from services.ingestion.event_records import EventRecordReader, EventRecordServicer
from services.ingestion.group_commit import GroupCommitOutbox
from services.ingestion.grpc_api import IngestionServicer
from services.ingestion.outbox_store import PostgresOutbox
from services.ingestion.relay import Relay
from services.ingestion.relay_store import PostgresRelayStore, listen_outbox
from services.ingestion.service import IngestionService
from services.ingestion.stats_api import IngestStatsReader, IngestStatsServicer

log = logging.getLogger(__name__)

SERVICE_NAME = ingestion_pb2.DESCRIPTOR.services_by_name["IngestionService"].full_name


def new_event_id() -> str:
    return str(uuid_utils.uuid7())


async def run(
    settings: IngestionSettings,
    *,
    api: bool = True,
    relay: bool = True,
    clock: Clock | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    clock = clock or SystemClock()
    stop = stop or asyncio.Event()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        install_stop_signals(stop)
    await asyncio.to_thread(migrations.apply, settings.database_url, "ingestion")
    publisher: KafkaPublisher | None = None
    if relay:
        # Producer and topics take the largest message an accepted event can make, so that
        # no accepted event is refused for its size (ADR 14).
        bus_limit = message_limit(settings.max_payload_bytes)
        await asyncio.to_thread(
            ensure_topics,
            settings.common.brokers,
            ALL_TOPICS,
            settings.common.topic_partitions,
            settings.common.topic_replication,
            max_message_bytes=bus_limit,
            security=settings.common.kafka,
        )
        # Below the topics' limit by a record batch's framing: the broker never refuses a
        # batch the producer built (ensure_topics refused to start otherwise; ADR 18).
        publisher = KafkaPublisher(
            settings.common.brokers,
            max_message_bytes=bus_limit - RECORD_BATCH_OVERHEAD,
            security=settings.common.kafka,
        )
    metrics.serve(settings.host, settings.metrics_port if api else settings.relay_metrics_port)

    health = Health([SERVICE_NAME] if api else [])
    await health.set(False, "starting")
    async with open_pool(
        settings.database_url,
        max_size=settings.pool_size + (settings.outbox.worker_count if relay else 0),
        acquire_timeout=settings.db_timeout,
        name="ingestion",
    ) as pool:
        store = PostgresRelayStore(pool)
        outbox: GroupCommitOutbox | None = None
        availability = Availability()
        # A relay-only process still serves gRPC health, on its own port.
        server = make_server(settings.host, settings.port if api else settings.relay_port, health)
        if api:
            outbox = GroupCommitOutbox(
                PostgresOutbox(pool, availability),
                max_rows=settings.group_commit_max_rows,
                flushers=settings.group_commit_flushers,
                max_queued_rows=settings.group_commit_max_queued_rows,
            )
            service = IngestionService(
                outbox,
                clock,
                new_event_id,
                max_payload_bytes=settings.max_payload_bytes,
                idempotency_retention=settings.idempotency_retention,
            )
            ingestion_pb2_grpc.add_IngestionServiceServicer_to_server(
                IngestionServicer(service), server
            )
            lineage_pb2_grpc.add_EventRecordServiceServicer_to_server(
                EventRecordServicer(EventRecordReader(pool)), server
            )
            # The console overview's figures (issue 19), asked by query inside the mesh.
            stats_pb2_grpc.add_IngestStatsServiceServicer_to_server(
                IngestStatsServicer(IngestStatsReader(pool)), server
            )
        await server.start()
        tasks: list[asyncio.Task[None]] = []
        relay_obj: Relay | None = None
        if relay and publisher is not None:
            relay_obj = Relay(
                store,
                metrics.InstrumentedPublisher(publisher),
                batch_size=settings.outbox.batch_size,
                max_retries=settings.outbox.max_retries,
                worker_count=settings.outbox.worker_count,
                poll_interval=settings.outbox.poll_interval,
                publish_timeout=RELAY_PUBLISH_TIMEOUT,
                linger=settings.outbox.linger,
            )
            tasks.append(asyncio.create_task(relay_obj.run(), name="outbox-relay"))
            tasks.append(
                asyncio.create_task(
                    listen_outbox(settings.database_url, relay_obj.notify, stop),
                    name="outbox-listener",
                )
            )
        tasks.append(
            asyncio.create_task(
                _monitor(pool, availability, store, health, relay_obj, settings, stop),
                name="health-monitor",
            )
        )
        log.info(
            "ingestion serving",
            extra={"address": f"{settings.host}:{settings.port}", "api": api, "relay": relay},
        )
        try:
            await watch(tasks, stop)
        finally:
            # Shutdown order: stop answering (drain in-flight calls), then let each relay
            # worker finish its batch, then flush the producer, then close the pool.
            await health.set(False, "shutting down")
            await server.stop(grace=5)
            if outbox is not None:
                await outbox.close()
            if relay_obj is not None:
                relay_obj.stop()
            stop.set()
            _, pending = await asyncio.wait(tasks, timeout=15)
            for t in pending:
                t.cancel()
            if publisher is not None:
                await asyncio.to_thread(publisher.close)
            log.info("ingestion stopped")


async def _monitor(
    pool: DictPool,
    availability: Availability,
    store: PostgresRelayStore,
    health: Health,
    relay: Relay | None,
    settings: IngestionSettings,
    stop: asyncio.Event,
) -> None:
    """Report SERVING only when the database answers and the relay is making progress."""
    purge_every = 60.0
    since_purge = purge_every
    while not stop.is_set():
        db_ok = await ping(pool)
        await availability.observe(pool, db_ok)
        relay_ok = relay is None or relay.healthy
        reason = (
            "" if db_ok and relay_ok else ("database unreachable" if not db_ok else "relay stuck")
        )
        await health.set(db_ok and relay_ok, reason)
        if db_ok and relay is not None:
            with contextlib.suppress(Unavailable):
                depth, age = await store.outbox_stats()
                metrics.OUTBOX_DEPTH.set(depth)
                metrics.OUTBOX_OLDEST.set(age)
        since_purge += 1.0
        if db_ok and since_purge >= purge_every:
            since_purge = 0.0
            with contextlib.suppress(Unavailable):
                await store.purge_idempotency_keys(settings.idempotency_retention)
        await wait_event(stop, 1.0)
