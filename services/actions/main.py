"""Composition root for the action orchestrator: gRPC API, consumer thread, delivery workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

import uuid_utils
from confluent_kafka import Consumer
from cornjacket.v1 import actions_pb2, actions_pb2_grpc, audit_pb2_grpc

from services.actions import secretbox
from services.actions.consumer import JobPlanner
from services.actions.delivery import DeliveryWorkers, HttpxSender, ResolvingGuard
from services.actions.grpc_api import ActionServicer
from services.actions.policy import Policy
from services.actions.rules import AllowList
from services.actions.service import ActionService
from services.actions.store import NOTIFY_CHANNEL, PostgresActionStore, PostgresJobSink
from services.config.settings import ActionsSettings
from services.core.aio import wait_event
from services.core.clock import Clock, SystemClock
from services.core.errors import Unavailable
from services.infra import metrics, migrations
from services.infra.audit import AsyncAuditLog, AuditLogServicer
from services.infra.consumer_loop import ConsumerLoop
from services.infra.kafka import consumer_config, ensure_topics
from services.infra.postgres import Availability, DictPool, listen, open_pool, ping
from services.infra.runtime import Health, install_stop_signals, make_server, watch

log = logging.getLogger(__name__)

SERVICE_NAME = actions_pb2.DESCRIPTOR.services_by_name["ActionService"].full_name


def new_id() -> str:
    return str(uuid_utils.uuid7())


def policy_from(settings: ActionsSettings) -> Policy:
    return Policy(
        timeout=settings.timeout,
        backoff=settings.backoff,
        jitter=settings.backoff_jitter,
        retry_after_max=settings.retry_after_max,
        breaker_threshold=settings.breaker_threshold,
        breaker_cooldown=settings.breaker_cooldown,
        rate_limit_per_minute=settings.rate_limit_per_minute,
        dedupe_window=settings.dedupe_window,
        max_job_age=settings.max_job_age,
    )


async def run(
    settings: ActionsSettings, *, clock: Clock | None = None, stop: asyncio.Event | None = None
) -> None:
    clock = clock or SystemClock()
    stop = stop or asyncio.Event()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        install_stop_signals(stop)
    box = secretbox.from_settings(settings.secrets_key, settings.secrets_key_file)
    # httpx logs every request's full URL at INFO: target URLs may embed credentials.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    await asyncio.to_thread(migrations.apply, settings.database_url, "actions")
    await asyncio.to_thread(
        ensure_topics,
        settings.common.brokers,
        settings.topics,
        settings.common.topic_partitions,
        settings.common.topic_replication,
        security=settings.common.kafka,
    )
    policy = policy_from(settings)
    allow = AllowList.parse(settings.allowed_targets)
    guard = ResolvingGuard(allow=allow) if settings.block_private_targets else None
    if guard is None:
        log.warning(
            "CJ_ACTIONS_BLOCK_PRIVATE_TARGETS=false: INSECURE, webhook rules can reach "
            "loopback, private and cloud metadata addresses (local experiments only)"
        )
    health = Health([SERVICE_NAME])
    await health.set(False, "starting")
    metrics.serve(settings.host, settings.metrics_port)
    sender = HttpxSender(max_connections=max(settings.workers, 10), guard=guard)
    async with open_pool(
        settings.database_url,
        max_size=settings.pool_size + settings.workers,
        acquire_timeout=settings.db_timeout,
        name="actions",
    ) as pool:
        store = PostgresActionStore(pool, box)
        sealed = await store.seal_plaintext_secrets()
        if sealed:
            log.warning(
                "sealed the plaintext signing secrets of stored rules", extra={"count": sealed}
            )
        service = ActionService(store, store, clock, new_id, guard=guard, allow=allow)
        server = make_server(settings.host, settings.port, health)
        audit = AsyncAuditLog(pool, "actions")
        actions_pb2_grpc.add_ActionServiceServicer_to_server(ActionServicer(service, audit), server)
        audit_pb2_grpc.add_AuditLogServiceServicer_to_server(
            AuditLogServicer("actions", audit), server
        )
        await server.start()

        sink = PostgresJobSink(settings.database_url)
        planner = JobPlanner(sink, clock, new_id, settings.dedupe_window)
        consumer = ConsumerLoop(
            # Webhooks do not need the handler's 10 ms fetches (CJ_ACTIONS_FETCH_LINGER, ADR 23).
            Consumer(
                consumer_config(
                    settings.common.brokers,
                    settings.consumer_group,
                    security=settings.common.kafka,
                    fetch_linger=settings.fetch_linger,
                )
            ),
            lambda msgs: planner.handle([m.value() or b"" for m in msgs]),
            settings.topics,
            batch_size=settings.batch_size,
            poll_timeout=settings.poll_timeout,
            group=settings.consumer_group,
            span_name=lambda m: "match rules",
            # In-flight webhooks are the workers' business; the consumer can stop at once.
            drain_on_stop=False,
            fetch_linger=settings.fetch_linger,
        )
        workers = DeliveryWorkers(
            store,
            sender,
            clock,
            policy,
            workers=settings.workers,
            poll_interval=settings.poll_interval,
            endpoint_concurrency=settings.endpoint_concurrency,
            name=f"{socket.gethostname()}:{os.getpid()}",
            guard=guard,
        )
        worker_stop = asyncio.Event()
        tasks = [
            asyncio.create_task(asyncio.to_thread(consumer.run), name="consumer"),
            asyncio.create_task(workers.run(worker_stop), name="delivery-workers"),
            asyncio.create_task(
                listen(settings.database_url, NOTIFY_CHANNEL, workers.notify, stop),
                name="jobs-listener",
            ),
            asyncio.create_task(
                _monitor(pool, health, consumer, store, clock, settings.retention, stop),
                name="health-monitor",
            ),
        ]
        log.info(
            "action orchestrator running",
            extra={
                "address": f"{settings.host}:{settings.port}",
                "group": settings.consumer_group,
                "topics": list(settings.topics),
                "workers": settings.workers,
            },
        )
        try:
            await watch(tasks, stop)
        finally:
            # Shutdown order: stop answering; stop consuming (jobs already written stay in
            # PostgreSQL); let in-flight webhooks finish briefly, releasing the rest; close.
            await health.set(False, "shutting down")
            await server.stop(grace=5)
            consumer.stop_event.set()
            worker_stop.set()
            stop.set()
            _, pending = await asyncio.wait(tasks, timeout=20)
            for t in pending:
                t.cancel()
            sink.close()
            await sender.close()
            log.info(
                "action orchestrator stopped",
                extra={"delivered": workers.delivered, "jobs": planner.jobs},
            )


async def _monitor(
    pool: DictPool,
    health: Health,
    consumer: ConsumerLoop,
    store: PostgresActionStore,
    clock: Clock,
    retention: float,
    stop: asyncio.Event,
) -> None:
    """SERVING when the database answers and the consumer has joined its group; samples the
    delivery and breaker gauges every 5 s; purges finished deliveries once a minute."""
    availability = Availability()
    purge_every = 60.0
    since_purge = purge_every
    since_stats = 5.0
    while not stop.is_set():
        db_ok = await ping(pool)
        await availability.observe(pool, db_ok)
        ok = db_ok and consumer.assigned.is_set() and consumer.db_ok
        reason = "" if ok else ("database unreachable" if not db_ok else "consumer not assigned")
        await health.set(ok, reason)
        since_purge += 1.0
        since_stats += 1.0
        if db_ok and since_stats >= 5.0:
            since_stats = 0.0
            with contextlib.suppress(Unavailable):
                counts, open_breakers = await store.stats()
                for status, n in counts.items():
                    metrics.WEBHOOK_DELIVERIES.labels(status).set(n)
                metrics.WEBHOOK_BREAKERS_OPEN.set(open_breakers)
        if db_ok and since_purge >= purge_every:
            since_purge = 0.0
            with contextlib.suppress(Unavailable):
                purged = await store.purge(clock.now(), retention)
                if purged:
                    log.info("purged old deliveries", extra={"count": purged})
        await wait_event(stop, 1.0)
