"""Composition root of the time-series service: the writer (consumer group tsdb-writer on
sensor-events), the series API, partitions made ahead and dropped by retention."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from confluent_kafka import Consumer
from cornjacket.v1 import series_pb2, series_pb2_grpc

from services.config.settings import TsdbSettings
from services.core.aio import wait_event
from services.core.clock import Clock, SystemClock
from services.infra import metrics, migrations
from services.infra.consumer_loop import ConsumerLoop
from services.infra.kafka import consumer_config, ensure_topics
from services.infra.postgres import (
    TRANSIENT,
    Availability,
    DictPool,
    connect_bounded,
    open_pool,
    ping,
)
from services.infra.runtime import Health, install_stop_signals, make_server, watch
from services.tsdb.consumer import batch_handler
from services.tsdb.grpc_api import SeriesServicer
from services.tsdb.points_store import PostgresPointWriter, create_partitions, drop_expired
from services.tsdb.series import days_ahead
from services.tsdb.series_reader import PostgresSeriesReader
from services.tsdb.service import SeriesService, SeriesWriter

log = logging.getLogger(__name__)

# The reads' statements run prepared (psycopg prepares a statement from its 5th use on a
# connection). PostgreSQL would plan them again on every call (a generic plan over all the
# day partitions costs more on paper than a custom one); the generic plan prunes partitions
# when it starts and cost ~0.4-0.6 ms less of the database's CPU per read (docs/tsdb.md).
READ_SESSION = {"plan_cache_mode": "force_generic_plan"}

SERVICE_NAME = series_pb2.DESCRIPTOR.services_by_name["SeriesService"].full_name


def keep_partitions(settings: TsdbSettings, clock: Clock) -> tuple[int, list[str]]:
    """One round of partition upkeep: today's and the next days' partitions made, expired
    ones dropped. Returns (made, dropped)."""
    now = clock.now()
    with connect_bounded(
        settings.database_url,
        lock_timeout=settings.lock_timeout,
        statement_timeout=settings.statement_timeout,
    ) as conn:
        made = create_partitions(
            conn, days_ahead(now, settings.partitions_ahead), settings.lock_timeout
        )
        dropped = drop_expired(
            conn,
            now,
            timedelta(seconds=settings.retention),
            timedelta(seconds=settings.rollup_retention),
            settings.lock_timeout,
        )
    metrics.TSDB_PARTITIONS.labels("made").inc(made)
    metrics.TSDB_PARTITIONS.labels("dropped").inc(len(dropped))
    if dropped:
        log.info("retention dropped partitions", extra={"partitions": dropped})
    return made, dropped


async def _upkeep(settings: TsdbSettings, clock: Clock, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await asyncio.to_thread(keep_partitions, settings, clock)
            wait = settings.retention_interval
        except TRANSIENT as e:
            log.warning("partition upkeep failed; retrying", extra={"error": str(e)})
            wait = min(settings.retention_interval, 5.0)
        await wait_event(stop, wait)


async def run(
    settings: TsdbSettings, *, clock: Clock | None = None, stop: asyncio.Event | None = None
) -> None:
    clock = clock or SystemClock()
    stop = stop or asyncio.Event()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        install_stop_signals(stop)
    await asyncio.to_thread(migrations.apply, settings.database_url, "tsdb")
    await asyncio.to_thread(
        ensure_topics,
        settings.common.brokers,
        settings.topics,
        settings.common.topic_partitions,
        settings.common.topic_replication,
        security=settings.common.kafka,
    )
    await asyncio.to_thread(keep_partitions, settings, clock)
    health = Health([SERVICE_NAME])
    await health.set(False, "starting")
    metrics.serve(settings.host, settings.metrics_port)
    async with open_pool(
        settings.database_url,
        max_size=settings.pool_size,
        acquire_timeout=settings.db_timeout,
        name="tsdb",
        session=READ_SESSION,
    ) as pool:
        server = make_server(settings.host, settings.port, health)
        series_pb2_grpc.add_SeriesServiceServicer_to_server(
            SeriesServicer(SeriesService(PostgresSeriesReader(pool), settings.max_points)), server
        )
        await server.start()
        writer = PostgresPointWriter(
            settings.database_url, settings.lock_timeout, settings.statement_timeout
        )
        consumer = ConsumerLoop(
            Consumer(
                consumer_config(
                    settings.common.brokers,
                    settings.consumer_group,
                    security=settings.common.kafka,
                    fetch_linger=settings.fetch_linger,
                )
            ),
            batch_handler(
                SeriesWriter(writer, settings.retention, settings.event_types, clock.now),
                clock.now,
            ),
            settings.topics,
            batch_size=settings.batch_size,
            poll_timeout=settings.poll_timeout,
            group=settings.consumer_group,
            span_name=lambda m: "write points",
            fetch_linger=settings.fetch_linger,
        )
        tasks = [
            asyncio.create_task(asyncio.to_thread(consumer.run), name="consumer"),
            asyncio.create_task(_upkeep(settings, clock, stop), name="partitions"),
            asyncio.create_task(_monitor(pool, health, consumer, stop), name="health-monitor"),
        ]
        log.info(
            "tsdb running",
            extra={
                "address": f"{settings.host}:{settings.port}",
                "group": settings.consumer_group,
                "topics": list(settings.topics),
            },
        )
        try:
            await watch(tasks, stop)
        finally:
            # Stop answering, then let the consumer drain and commit what it wrote.
            await health.set(False, "shutting down")
            await server.stop(grace=5)
            consumer.stop_event.set()
            stop.set()
            _, pending = await asyncio.wait(tasks, timeout=15)
            for t in pending:
                t.cancel()
            writer.close()
            log.info("tsdb stopped", extra={"processed": consumer.processed})


async def _monitor(
    pool: DictPool, health: Health, consumer: ConsumerLoop, stop: asyncio.Event
) -> None:
    """SERVING when the database answers and the writer has joined its group."""
    availability = Availability()
    while not stop.is_set():
        db_ok = await ping(pool)
        await availability.observe(pool, db_ok)
        ok = db_ok and consumer.assigned.is_set() and consumer.db_ok
        reason = "" if ok else ("database unreachable" if not db_ok else "consumer not assigned")
        await health.set(ok, reason)
        await wait_event(stop, 1.0)
