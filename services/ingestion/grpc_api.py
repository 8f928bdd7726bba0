"""gRPC transport for ingestion: Protobuf in, plain commands to the core, Protobuf out."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence
from datetime import datetime

import grpc
from cornjacket.v1 import ingestion_pb2, ingestion_pb2_grpc
from opentelemetry import trace

from services.core.errors import InvalidInput, Unavailable
from services.core.events import SOURCES
from services.infra import logs, metrics, tracing
from services.infra.codec import from_timestamp, from_value
from services.infra.grpc_errors import grpc_errors, metadata_value
from services.ingestion.service import IngestionService
from services.ingestion.validation import IngestCommand


def _trace_id(context: grpc.aio.ServicerContext) -> str:
    # W3C traceparent: version-traceid-spanid-flags
    parent = metadata_value(context, "traceparent")
    parts = parent.split("-")
    if len(parts) == 4 and len(parts[1]) == 32:
        return parts[1]
    return metadata_value(context, "x-request-id")


@dataclasses.dataclass(frozen=True, slots=True)
class CallContext:
    """What every event of one call shares; read from the call once, not per event."""

    source: str
    trace_id: str  # from traceparent or x-request-id
    span_trace: str = ""  # the call's server span (GrpcMetrics opened it), when tracing
    span_id: str = ""
    subject: str = ""
    principal: str = ""  # whose idempotency keys: see principal_of

    @classmethod
    def of(cls, context: grpc.aio.ServicerContext) -> CallContext:
        span_trace, span_id = "", ""
        if tracing.enabled:
            span_trace, span_id = tracing.ids(trace.get_current_span())
        # Envoy drops any x-cj-subject a client sent and sets it from the verified token.
        subject = metadata_value(context, "x-cj-subject")[:256]
        source = _source(context)
        return cls(
            source,
            _trace_id(context),
            span_trace,
            span_id,
            subject,
            principal_of(source, subject),
        )


def principal_of(source: str, subject: str) -> str:
    """The namespace a call's idempotency keys live in. The MQTT gateway's calls (source
    "mqtt", which only a call that bypassed Envoy can carry: Envoy overwrites x-cj-source
    with "http" or "grpc") keep the gateway's ``mqtt:<user>``/``mqtt-anonymous``, the
    inference service's (source "ai") its ``ai:inference``; every
    other subject is an edge token's and becomes ``jwt:<sub>``, so a token whose sub is
    ``mqtt:dev-42`` never shares dev-42's keys. No subject (auth off): the empty principal."""
    if not subject or source in ("mqtt", "ai"):
        return subject
    return f"jwt:{subject}"


def to_command(req: ingestion_pb2.IngestEventRequest, call: CallContext) -> IngestCommand:
    trace_id, span_id = req.trace_id or call.trace_id, ""
    # The call's server span becomes the event's parent span.
    if call.span_trace and (not trace_id or trace_id == call.span_trace):
        trace_id, span_id = call.span_trace, call.span_id
    return IngestCommand(
        event_type=req.event_type,
        aggregate_id=req.aggregate_id,
        payload=from_value(req.payload) if req.HasField("payload") else None,
        event_time=_event_time(req) if req.HasField("event_time") else None,
        trace_id=trace_id,
        idempotency_key=req.idempotency_key,
        source=call.source,
        span_id=span_id,
        subject=call.subject,
        principal=call.principal,
    )


def _event_time(req: ingestion_pb2.IngestEventRequest) -> datetime:
    try:
        return from_timestamp(req.event_time)
    except ValueError:
        raise InvalidInput(
            "event_time is outside 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z"
        ) from None


def _commands(
    events: Sequence[ingestion_pb2.IngestEventRequest], call: CallContext
) -> list[IngestCommand]:
    commands = []
    for i, e in enumerate(events):
        try:
            commands.append(to_command(e, call))
        except InvalidInput as err:
            raise InvalidInput(f"events[{i}]: {err}") from None
    return commands


def _source(context: grpc.aio.ServicerContext) -> str:
    # Envoy sets x-cj-source on every request it forwards (overwriting any client value);
    # the MQTT gateway calls from inside the mesh and says "mqtt", the inference service "ai".
    src = metadata_value(context, "x-cj-source")
    return src if src in SOURCES else "grpc"


def _count(source: str, result: str, n: int = 1) -> None:
    metrics.INGESTED.labels(source, result).inc(n)


class IngestionServicer(ingestion_pb2_grpc.IngestionServiceServicer):
    def __init__(self, service: IngestionService) -> None:
        self._service = service

    @grpc_errors
    async def IngestEvent(
        self, request: ingestion_pb2.IngestEventRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.IngestEventResponse:
        cmd = to_command(request, CallContext.of(context))
        logs.bind(trace_id=cmd.trace_id)
        if not cmd.idempotency_key:
            header = metadata_value(context, "idempotency-key")
            if header:
                cmd = dataclasses.replace(cmd, idempotency_key=header)
        try:
            result = await self._service.ingest(cmd)
        except (InvalidInput, Unavailable) as e:
            _count(cmd.source, "rejected" if isinstance(e, InvalidInput) else "unavailable")
            raise
        _count(cmd.source, result.status)
        return ingestion_pb2.IngestEventResponse(event_id=result.event_id, status=result.status)

    @grpc_errors
    async def IngestEvents(
        self, request: ingestion_pb2.IngestEventsRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.IngestEventsResponse:
        call = CallContext.of(context)
        source = call.source
        try:
            results = await self._service.ingest_many(_commands(request.events, call))
        except (InvalidInput, Unavailable) as e:
            kind = "rejected" if isinstance(e, InvalidInput) else "unavailable"
            _count(source, kind, len(request.events))
            raise
        for status, n in collections.Counter(r.status for r in results).items():
            _count(source, status, n)
        out = ingestion_pb2.IngestEventsResponse()
        for i, r in enumerate(results):
            out.results.add(index=i, event_id=r.event_id, status=r.status, error=r.error)
        out.accepted = sum(1 for r in results if r.status != "rejected")
        out.rejected = len(results) - out.accepted
        return out
