"""Prometheus metrics: one registry per process, served on its own HTTP port.

What each metric means is in docs/metrics.md. Adapters record them; core logic does not
import this module (it reaches the core through decorators such as InstrumentedPublisher).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from services.core.errors import Unavailable
from services.core.events import Event, PartlyPublished
from services.infra import tracing

log = logging.getLogger(__name__)

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

GRPC_REQUESTS = Counter("cornjacket_grpc_requests_total", "gRPC calls answered", ["method", "code"])
GRPC_SECONDS = Histogram(
    "cornjacket_grpc_request_seconds", "gRPC call latency", ["method"], buckets=_LATENCY
)
INGESTED = Counter(
    "cornjacket_ingest_events_total",
    "Events offered to ingestion, by source and result (accepted, duplicate, rejected, "
    "unavailable)",
    ["source", "result"],
)
OUTBOX_DEPTH = Gauge("cornjacket_outbox_depth", "Rows waiting in ingestion.outbox")
OUTBOX_OLDEST = Gauge(
    "cornjacket_outbox_oldest_age_seconds", "Age of the oldest outbox row (0 when empty)"
)
RELAY_PUBLISH_SECONDS = Histogram(
    "cornjacket_relay_publish_seconds",
    "Time for the broker to acknowledge one relay batch",
    buckets=_LATENCY,
)
RELAY_EVENTS = Counter(
    "cornjacket_relay_events_total", "Events the relay published, by result", ["result"]
)
CONSUMER_LAG = Gauge(
    "cornjacket_consumer_lag",
    "Messages between a consumer's position and the partition's end",
    ["group", "topic", "partition"],
)
HANDLER_SECONDS = Histogram(
    "cornjacket_handler_batch_seconds",
    "Time to fold one polled batch into projections (including its transaction)",
    buckets=_LATENCY,
)
HANDLER_EVENTS = Counter(
    "cornjacket_handler_events_total",
    "Events the event handler took, by outcome (applied, skipped, dead_lettered)",
    ["outcome"],
)
DLQ_PENDING = Gauge(
    "cornjacket_dlq_pending", "Dead letters waiting for replay or discard", ["consumer"]
)

WEBHOOK_JOBS = Counter(
    "cornjacket_webhook_jobs_total",
    "Delivery jobs the action orchestrator wrote for matching events (re-deliveries excluded)",
)
WEBHOOK_ATTEMPTS = Counter(
    "cornjacket_webhook_attempts_total",
    "Webhook attempts by outcome (success, failure, timeout, connection_error, gone, "
    "short_circuited, blocked, invalid_request, error)",
    ["outcome"],
)
WEBHOOK_LEASES_LOST = Counter(
    "cornjacket_webhook_leases_lost",
    "Delivery jobs whose lease ran out and was taken by another claim before the worker "
    "sent or recorded its attempt (nothing is written; the holder delivers it)",
)
WEBHOOK_ATTEMPT_SECONDS = Histogram(
    "cornjacket_webhook_attempt_seconds",
    "Duration of one webhook HTTP attempt",
    buckets=(*_LATENCY, 30),
)
WEBHOOK_DELIVERIES = Gauge(
    "cornjacket_webhook_deliveries",
    "Deliveries by status: pending (queued, retrying or waiting on a breaker), failed (the DLQ)",
    ["status"],
)
WEBHOOK_BREAKERS_OPEN = Gauge(
    "cornjacket_webhook_breakers_open", "Endpoints whose circuit breaker is open or half-open"
)
AUDIT_UNFINISHED = Counter(
    "cornjacket_audit_unfinished_total",
    "Admin calls whose audit record could not be completed (left with outcome UNKNOWN), by owner",
    ["owner"],
)

# Time series (issue 17).
TSDB_POINTS = Counter(
    "cornjacket_tsdb_points_total",
    "Points the TSDB writer took, by outcome (written, duplicate, too_old, refused; "
    "undecodable counts messages)",
    ["outcome"],
)
TSDB_BATCH_SECONDS = Histogram(
    "cornjacket_tsdb_batch_seconds",
    "Time to write one polled batch: points, rollups and latest values in one transaction",
    buckets=_LATENCY,
)
TSDB_PARTITIONS = Counter(
    "cornjacket_tsdb_partitions_total", "Day partitions made or dropped", ["action"]
)


def serve(host: str, port: int) -> None:
    """Serve /metrics on host:port in a background thread; port 0 turns it off."""
    if port == 0:
        return
    from services.infra.runtime import PortInUse

    try:
        start_http_server(port, addr=host)
    except OSError as e:
        raise PortInUse(f"cannot serve metrics on {host}:{port}: {e}") from e
    log.info("metrics serving", extra={"address": f"http://{host}:{port}/metrics"})


class InstrumentedPublisher:
    """Publisher decorator: batch latency and event counts for the relay."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def publish(self, events: Sequence[Event]) -> Any:
        start = time.perf_counter()
        try:
            published = await self._inner.publish(events)
        except PartlyPublished as e:
            # Some were acknowledged: the relay records and deletes those rows.
            failed = sum(1 for r in e.results if isinstance(r, Unavailable))
            RELAY_EVENTS.labels("failed").inc(failed)
            RELAY_EVENTS.labels("published").inc(
                sum(1 for r in e.results if not isinstance(r, BaseException))
            )
            raise
        except Exception:
            RELAY_EVENTS.labels("failed").inc(len(events))
            raise
        RELAY_PUBLISH_SECONDS.observe(time.perf_counter() - start)
        # A result that is an exception is an event the bus refused for good: the relay sets
        # its row aside and counts it as "poisoned" (relay_store), not as published.
        RELAY_EVENTS.labels("published").inc(
            sum(1 for r in published if not isinstance(r, BaseException))
        )
        return published

    def close(self, flush_timeout: float = 10) -> None:
        self._inner.close(flush_timeout)


class GrpcMetrics(grpc.aio.ServerInterceptor):
    """Counts and times every unary call of an asyncio gRPC server; with tracing on, each
    call is a server span continuing the caller's ``traceparent``. The wrapped handler is
    built once per method (handlers are registered once), not per call."""

    def __init__(self) -> None:
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        full = str(details.method)
        cached = self._wrapped.get(full)
        if cached is not None:
            return cached
        handler = await continuation(details)
        if (
            handler is None
            or handler.unary_unary is None
            or full.startswith("/grpc.health.")  # Envoy's probes: noise
        ):
            return handler
        wrapped = _timed(full, handler)
        self._wrapped[full] = wrapped
        return wrapped


def _timed(full: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    method = full.rsplit("/", 1)[-1]
    inner = handler.unary_unary
    seconds = GRPC_SECONDS.labels(method)

    async def timed(request: Any, context: grpc.aio.ServicerContext) -> Any:
        start = time.perf_counter()
        code = "OK"
        try:
            if tracing.enabled:
                carrier = {
                    k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)
                }
                with tracing.span(method, SpanKind.SERVER, tracing.extract(carrier), rpc=full):
                    return await inner(request, context)
            return await inner(request, context)
        except BaseException:
            c = context.code()
            code = c.name if isinstance(c, grpc.StatusCode) else "UNKNOWN"
            raise
        finally:
            GRPC_REQUESTS.labels(method, code).inc()
            seconds.observe(time.perf_counter() - start)

    return grpc.unary_unary_rpc_method_handler(
        timed,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
