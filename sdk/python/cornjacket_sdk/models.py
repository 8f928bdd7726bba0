"""What the typed calls return: plain frozen dataclasses with datetimes and dicts, built from
the Protobuf answers (``from_proto``). The raw stubs (``cj.query`` ...) still answer Protobuf."""

from __future__ import annotations

import dataclasses
import keyword
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from cornjacket.v1 import events_pb2, ingestion_pb2, lineage_pb2, query_pb2
from google.protobuf import descriptor, json_format, timestamp_pb2
from google.protobuf.message import Message


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
    """Why the server ended a stream: ``reason`` is "too_slow", "shutdown" or
    "max_duration" (the server's limit on a stream's age)."""

    reason: str
    message: str


# --- every other answer: the same plain form, built from the message's descriptor ----------
class Plain(Protocol):
    """A frozen dataclass named like the Protobuf message, with its field names: Timestamps as
    datetimes (None when unset), Structs as dicts, repeated fields as lists, maps as dicts,
    enums as their names, unset optional or message fields as None."""

    def __getattr__(self, name: str) -> Any: ...


_CLASSES: dict[str, type] = {}
_F = descriptor.FieldDescriptor


def _attr(name: str) -> str:
    return f"{name}_" if keyword.iskeyword(name) else name


def _class_for(desc: Any) -> type:
    cls = _CLASSES.get(desc.full_name)
    if cls is None:
        cls = dataclasses.make_dataclass(
            desc.name,
            [(_attr(f.name), Any) for f in desc.fields],
            frozen=True,
            slots=True,
            namespace={"__module__": __name__},
        )
        _CLASSES[desc.full_name] = cls
    return cls


def _repeated(fd: Any) -> bool:
    if hasattr(fd, "is_repeated"):
        return bool(fd.is_repeated)
    return bool(fd.label == _F.LABEL_REPEATED)


def _single(fd: Any, value: Any) -> Any:
    if fd.type == _F.TYPE_ENUM:
        enum_value = fd.enum_type.values_by_number.get(value)
        return enum_value.name if enum_value is not None else value
    if fd.type != _F.TYPE_MESSAGE:
        return value
    name = fd.message_type.full_name
    if name == "google.protobuf.Timestamp":
        return _time(value)
    if name in ("google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"):
        return json_format.MessageToDict(value)
    return plain(value)


def plain(message: Message) -> Plain:
    """The plain form of any answer (see ``Plain``)."""
    desc: Any = message.DESCRIPTOR
    values: dict[str, Any] = {}
    for fd in desc.fields:
        value = getattr(message, fd.name)
        entry = fd.message_type
        if _repeated(fd) and entry is not None and entry.GetOptions().map_entry:
            vfield = entry.fields_by_name["value"]
            values[_attr(fd.name)] = {k: _single(vfield, v) for k, v in value.items()}
        elif _repeated(fd):
            values[_attr(fd.name)] = [_single(fd, v) for v in value]
        elif fd.has_presence and not message.HasField(fd.name):
            values[_attr(fd.name)] = None
        else:
            values[_attr(fd.name)] = _single(fd, value)
    result: Plain = _class_for(desc)(**values)
    return result
