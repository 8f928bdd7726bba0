"""Composition root for the MQTT gateway (`cornjacket serve mqtt`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import uuid_utils
from amqtt.errors import BrokerError
from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from services.config.settings import MqttSettings
from services.core.aio import wait_event
from services.infra import metrics
from services.infra.runtime import Health, PortInUse, install_stop_signals, make_server, watch
from services.mqtt.access import Access, Throttle, load_users, parse_users
from services.mqtt.broker import BrokerFeedback, GatewayBroker
from services.mqtt.gateway import Gateway, Limits
from services.mqtt.ingest_client import GrpcIngestor
from services.mqtt.tokens import TokenVerifier

log = logging.getLogger(__name__)

STATS_INTERVAL = 30.0


def new_key() -> str:
    # Names a device's event for retries of the ingestion call; UUIDv7 keeps the keys'
    # index append-mostly.
    return f"mqtt:{uuid_utils.uuid7()}"


async def run(settings: MqttSettings, *, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        install_stop_signals(stop)
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    logging.getLogger("transitions").setLevel(logging.WARNING)
    if settings.users_file is not None:
        users = load_users(settings.users_file)
    elif settings.users_toml:
        users = parse_users(settings.users_toml, "CJ_MQTT_USERS")
    else:
        users = {}
    access = Access(
        users=users,
        allow_anonymous=settings.allow_anonymous,
        throttle=Throttle(settings.login_failures, 60.0),
        tokens=TokenVerifier(
            settings.jwks_file,
            issuer=settings.token_issuer,
            audience=settings.token_audience,
            leeway=settings.token_leeway,
        )
        if settings.jwks_file is not None
        else None,
    )
    if settings.allow_anonymous:
        log.warning(
            "ANONYMOUS MQTT ACCESS IS ON (CJ_MQTT_ALLOW_ANONYMOUS): any client may publish any "
            "event; use it for local experiments only"
        )
    health = Health(["cornjacket.v1.MqttGateway"])
    await health.set(False, "starting")
    health_server = make_server(settings.host, settings.health_port, health)
    ingestor = GrpcIngestor(settings.ingestion_address, settings.ingest_timeout)
    feedback = BrokerFeedback()
    gateway = Gateway(
        ingestor,
        feedback,
        access,
        new_key,
        Limits(
            max_message_bytes=settings.max_message_bytes,
            max_batch_events=settings.max_batch_events,
            max_inflight=settings.max_inflight,
        ),
    )
    tls = None
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        tls = (settings.tls_port, settings.tls_cert_file, settings.tls_key_file)
    broker = GatewayBroker(
        host=settings.host,
        port=settings.port if settings.plain else None,
        tls=tls,
        gateway=gateway,
        access=access,
        max_connections=settings.max_connections,
        max_pending=settings.max_pending,
        connect_timeout=settings.connect_timeout,
        max_packet_bytes=settings.max_packet_bytes,
    )
    if settings.plain and tls is not None:
        log.warning("plain-text MQTT is on beside TLS (CJ_MQTT_PLAIN): for local use only")
    feedback.broker = broker
    gateway.start()
    metrics.serve(settings.host, settings.metrics_port)
    REGISTRY.register(GatewayCollector(gateway))
    try:
        await broker.start()
    except BrokerError as e:
        await ingestor.close()
        raise PortInUse(
            f"cannot start the MQTT listeners on {settings.host} "
            f"(plain {settings.port if settings.plain else 'off'}, "
            f"TLS {settings.tls_port if tls else 'off'}): {e}"
        ) from e
    await health_server.start()
    await health.set(True)
    log.info(
        "mqtt gateway serving",
        extra={
            "address": f"{settings.host}:{settings.port}" if settings.plain else "",
            "tls_address": f"{settings.host}:{settings.tls_port}" if tls else "",
            "tokens": settings.jwks_file is not None,
            "ingestion": settings.ingestion_address,
            "anonymous": settings.allow_anonymous,
            "users": len(access.users),
        },
    )
    stats = asyncio.create_task(_log_stats(gateway, stop), name="mqtt-stats")
    try:
        await watch([stats], stop)
    finally:
        await health.set(False, "shutting down")
        await broker.stop_listening()
        # Settle what devices already sent (their acknowledgements go out), then close
        # every connection; anything unsettled stays unacknowledged and is sent again.
        await gateway.stop(settings.shutdown_grace)
        await broker.shutdown()
        stop.set()
        await asyncio.wait([stats], timeout=3)
        await ingestor.close()
        await health_server.stop(grace=1)
        log.info("mqtt gateway stopped", extra={"counters": gateway.counters.snapshot()})


class GatewayCollector(Collector):
    """The gateway's own counters, read at scrape time (the core knows nothing of Prometheus)."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        c = self._gateway.counters
        settled = CounterMetricFamily(
            "cornjacket_mqtt_messages",
            "MQTT publishes settled by the gateway, by result (accepted, duplicate, or the "
            "rejection code)",
            labels=["result"],
        )
        settled.add_metric(["accepted"], c.accepted)
        settled.add_metric(["duplicate"], c.duplicates)
        for code, n in c.rejected.items():
            settled.add_metric([code], n)
        settled.add_metric(["dropped_qos0"], c.dropped_qos0)
        yield settled
        retries = CounterMetricFamily(
            "cornjacket_mqtt_ingest_retries", "Ingestion calls the gateway had to repeat"
        )
        retries.add_metric([], c.ingest_retries)
        yield retries
        queued = GaugeMetricFamily(
            "cornjacket_mqtt_queued", "Publishes waiting for ingestion (unacknowledged)"
        )
        queued.add_metric([], self._gateway.queued)
        yield queued


async def _log_stats(gateway: Gateway, stop: asyncio.Event) -> None:
    last: dict[str, object] = {}
    while not await wait_event(stop, STATS_INTERVAL):
        now = gateway.counters.snapshot()
        if now != last:
            log.info("mqtt gateway counters", extra={"counters": now, "queued": gateway.queued})
            last = now
