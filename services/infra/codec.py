"""Protobuf <-> plain value conversion for the event envelope (the bus wire format)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from cornjacket.v1 import events_pb2
from google.protobuf import json_format, struct_pb2, timestamp_pb2

from services.core.events import Event, Metadata


def to_timestamp(dt: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(dt.astimezone(UTC))
    return ts


def from_timestamp(ts: timestamp_pb2.Timestamp) -> datetime:
    dt: datetime = ts.ToDatetime(tzinfo=UTC)
    return dt


def to_struct(data: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(data)
    return s


def from_struct(s: struct_pb2.Struct) -> dict[str, Any]:
    result: dict[str, Any] = json_format.MessageToDict(s)
    return result


def from_value(v: struct_pb2.Value) -> Any:
    """Any JSON value; an unset Value (no kind) and JSON null both become None."""
    if v.WhichOneof("kind") in (None, "null_value"):
        return None
    return json_format.MessageToDict(v)


def to_value(data: Any) -> struct_pb2.Value:
    v = struct_pb2.Value()
    json_format.ParseDict(data, v)
    return v


def event_to_proto(event: Event) -> events_pb2.EventEnvelope:
    return events_pb2.EventEnvelope(
        event_id=event.event_id,
        event_type=event.event_type,
        aggregate_id=event.aggregate_id,
        event_time=to_timestamp(event.event_time),
        ingested_at=to_timestamp(event.ingested_at),
        payload=to_struct(event.payload),
        metadata=events_pb2.EventMetadata(
            trace_id=event.metadata.trace_id,
            source=event.metadata.source,
            schema_version=event.metadata.schema_version,
            span_id=event.metadata.span_id,
        ),
    )


def encode_event(event: Event) -> bytes:
    data: bytes = event_to_proto(event).SerializeToString()
    return data


class DecodeError(ValueError):
    """The bytes are not a usable EventEnvelope (a poison message)."""


def decode_event(data: bytes) -> Event:
    env = events_pb2.EventEnvelope()
    try:
        env.ParseFromString(data)
    except Exception as e:
        raise DecodeError(f"not an EventEnvelope: {e}") from e
    if not env.event_id or not env.event_type or not env.aggregate_id:
        raise DecodeError("EventEnvelope lacks event_id, event_type or aggregate_id")
    try:
        uuid.UUID(env.event_id)
    except ValueError:
        raise DecodeError(f"event_id {env.event_id[:64]!r} is not a UUID") from None
    return event_from_proto(env)


def event_from_proto(env: events_pb2.EventEnvelope) -> Event:
    return Event(
        event_id=env.event_id,
        event_type=env.event_type,
        aggregate_id=env.aggregate_id,
        event_time=from_timestamp(env.event_time),
        ingested_at=from_timestamp(env.ingested_at),
        payload=from_struct(env.payload),
        metadata=Metadata(
            trace_id=env.metadata.trace_id,
            source=env.metadata.source,
            schema_version=env.metadata.schema_version,
            span_id=env.metadata.span_id,
        ),
    )
