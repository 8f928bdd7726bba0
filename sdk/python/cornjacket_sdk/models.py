"""What the typed calls return: plain frozen dataclasses with datetimes and dicts, built from
the Protobuf answers (``from_proto``). The raw stubs (``cj.query`` ...) still answer Protobuf."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cornjacket.v1 import events_pb2, ingestion_pb2, lineage_pb2, query_pb2
from google.protobuf import json_format, timestamp_pb2


def _time(ts: timestamp_pb2.Timestamp) -> datetime | None:
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=UTC)


def _dict(message: Any) -> dict[str, Any]:
    value = json_format.MessageToDict(message)
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    event_type: str
    aggregate_id: str
    event_time: datetime | None
    ingested_at: datetime | None
    payload: dict[str, Any]
    trace_id: str = ""
    source: str = ""

    @classmethod
    def from_proto(cls, e: events_pb2.EventEnvelope) -> Event:
        return cls(
            event_id=e.event_id,
            event_type=e.event_type,
            aggregate_id=e.aggregate_id,
            event_time=_time(e.event_time),
            ingested_at=_time(e.ingested_at),
            payload=_dict(e.payload),
            trace_id=e.metadata.trace_id,
            source=e.metadata.source,
        )


@dataclass(frozen=True, slots=True)
class Projection:
    projection_id: str
    projection_type: str
    aggregate_id: str
    state: dict[str, Any]
    last_event_id: str
    last_event_timestamp: datetime | None
    updated_at: datetime | None

    @classmethod
    def from_proto(cls, p: query_pb2.Projection) -> Projection:
        return cls(
            projection_id=p.projection_id,
            projection_type=p.projection_type,
            aggregate_id=p.aggregate_id,
            state=_dict(p.state),
            last_event_id=p.last_event_id,
            last_event_timestamp=_time(p.last_event_timestamp),
            updated_at=_time(p.updated_at),
        )


@dataclass(frozen=True, slots=True)
class ProjectionPage:
    projections: list[Projection]
    total: int
    limit: int
    offset: int

    @classmethod
    def from_proto(cls, r: query_pb2.ListProjectionsResponse) -> ProjectionPage:
        return cls([Projection.from_proto(p) for p in r.projections], r.total, r.limit, r.offset)


@dataclass(frozen=True, slots=True)
class Accepted:
    """An ingest's answer: ``status`` is "accepted", or "duplicate" when the idempotency key
    matched an earlier event (``event_id`` is that event's)."""

    event_id: str
    status: str

    @classmethod
    def from_proto(cls, r: ingestion_pb2.IngestEventResponse) -> Accepted:
        return cls(r.event_id, r.status)


@dataclass(frozen=True, slots=True)
class BatchItem:
    index: int
    event_id: str
    status: str  # "accepted", "duplicate" or "rejected"
    error: str = ""


@dataclass(frozen=True, slots=True)
class BatchResult:
    results: list[BatchItem]
    accepted: int
    rejected: int

    @classmethod
    def from_proto(cls, r: ingestion_pb2.IngestEventsResponse) -> BatchResult:
        items = [BatchItem(i.index, i.event_id, i.status, i.error) for i in r.results]
        return cls(items, r.accepted, r.rejected)


@dataclass(frozen=True, slots=True)
class Hop:
    stage: str
    status: str
    at: datetime | None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Lineage:
    event_id: str
    event: Event
    hops: list[Hop] = field(default_factory=list)

    @classmethod
    def from_proto(cls, r: lineage_pb2.EventLineage) -> Lineage:
        hops = [Hop(h.stage, h.status, _time(h.at), h.detail) for h in r.hops]
        return cls(r.event_id, Event.from_proto(r.event), hops)


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """Why the server ended a stream: ``reason`` is "too_slow" or "shutdown"."""

    reason: str
    message: str
