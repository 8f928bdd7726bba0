"""Protobuf <-> plain value conversion for the event envelope (the bus wire format).

The converters walk Struct/Value by hand instead of calling json_format and the Timestamp
helpers: they run for every event in ingestion, the relay and the event handler, and the
hand-written forms cost about half as much (ADR 0012). Their results are checked against
json_format's in tests/unit/test_codec.py.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from cornjacket.v1 import events_pb2
from google.protobuf import struct_pb2, timestamp_pb2

from services.core.errors import InvalidInput
from services.core.events import Event, Metadata
from services.core.json_text import all_finite

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Timestamp's valid range (0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999999Z).
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799


def _set_timestamp(ts: timestamp_pb2.Timestamp, dt: datetime) -> None:
    d = (dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)) - _EPOCH
    ts.seconds, ts.nanos = d.days * 86_400 + d.seconds, d.microseconds * 1000


def parse_rfc3339(name: str, text: str) -> datetime | None:
    """An API's RFC 3339 time field (``name`` for the error): "" means none; a time without a
    zone, or text that is not a time, is InvalidInput naming the field."""
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{name} {text[:60]!r} is not an RFC 3339 time") from None
    if dt.tzinfo is None:
        raise InvalidInput(f"{name} {text[:60]!r} needs a time zone (e.g. Z)")
    return dt


def to_timestamp(dt: datetime) -> timestamp_pb2.Timestamp:
    """A naive datetime is taken as UTC (as Timestamp.FromDatetime does)."""
    ts = timestamp_pb2.Timestamp()
    _set_timestamp(ts, dt)
    return ts


def from_timestamp(ts: timestamp_pb2.Timestamp) -> datetime:
    """Aware UTC datetime; sub-microsecond digits are dropped (as ToDatetime does)."""
    seconds, nanos = ts.seconds, ts.nanos
    if not (_MIN_SECONDS <= seconds <= _MAX_SECONDS and 0 <= nanos < 1_000_000_000):
        raise ValueError(f"Timestamp out of range: seconds={seconds} nanos={nanos}")
    return _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)


def _py(v: struct_pb2.Value) -> Any:
    kind = v.WhichOneof("kind")
    if kind == "number_value":
        return v.number_value
    if kind == "string_value":
        return v.string_value
    if kind == "struct_value":
        return _dict(v.struct_value)
    if kind == "bool_value":
        return v.bool_value
    if kind == "list_value":
        return [_py(x) for x in v.list_value.values]
    return None  # null_value, or no kind set


def _dict(s: struct_pb2.Struct) -> dict[str, Any]:
    fields = s.fields  # keys then lookups: the map's items() is a slow Python-level view
    return {k: _py(fields[k]) for k in fields}


def _fill_struct(s: struct_pb2.Struct, data: dict[str, Any]) -> None:
    """Fill in place (a built Struct passed to a constructor would be copied)."""
    fields = s.fields
    for key, item in data.items():
        _fill(fields[key], item)
    if not data:
        s.SetInParent()  # present, if empty: {} rather than an unset field


def _fill(v: struct_pb2.Value, data: Any) -> None:
    t = type(data)
    if t is str:
        v.string_value = data
    elif t is float:
        v.number_value = data
    elif t is int:
        _set_int(v, data)
    elif t is bool:
        v.bool_value = data
    elif data is None:
        v.null_value = struct_pb2.NULL_VALUE
    elif isinstance(data, dict):
        _fill_struct(v.struct_value, data)
    elif isinstance(data, (list, tuple)):
        values = v.list_value.values
        for item in data:
            _fill(values.add(), item)
        if not data:
            v.list_value.SetInParent()
    elif isinstance(data, int):  # subclasses (bool cannot be subclassed)
        _set_int(v, data)
    elif isinstance(data, float):
        v.number_value = data
    elif isinstance(data, str):
        v.string_value = data
    else:
        raise ValueError(f"not a JSON value: {type(data).__name__}")


def _set_int(v: struct_pb2.Value, data: int) -> None:
    try:
        v.number_value = data
    except OverflowError:  # Struct numbers are doubles
        digits = int(data.bit_length() * 0.30103) + 1  # str() refuses > 4300 digits
        raise ValueError(f"a number of about {digits} digits is beyond a double's range") from None


def to_struct(data: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    _fill_struct(s, data)
    return s


def from_struct(s: struct_pb2.Struct) -> dict[str, Any]:
    """Raises ValueError for a non-finite number (JSON cannot carry it)."""
    data = _dict(s)
    if not all_finite(data):
        raise ValueError("payload numbers must be finite (no NaN or Infinity)")
    return data


def from_value(v: struct_pb2.Value) -> Any:
    """Any JSON value; an unset Value (no kind) and JSON null both become None. A non-finite
    number is passed through for validation to refuse with a precise message."""
    return _py(v)


def to_value(data: Any) -> struct_pb2.Value:
    v = struct_pb2.Value()
    _fill(v, data)
    return v


def event_to_proto(event: Event) -> events_pb2.EventEnvelope:
    env = events_pb2.EventEnvelope(
        event_id=event.event_id,
        event_type=event.event_type,
        aggregate_id=event.aggregate_id,
        metadata=events_pb2.EventMetadata(
            trace_id=event.metadata.trace_id,
            source=event.metadata.source,
            schema_version=event.metadata.schema_version,
            span_id=event.metadata.span_id,
        ),
    )
    # Filled in place: passing built submessages to the constructor would copy them.
    _set_timestamp(env.event_time, event.event_time)
    _set_timestamp(env.ingested_at, event.ingested_at)
    _fill_struct(env.payload, event.payload)
    return env


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
    try:
        return event_from_proto(env)
    except ValueError as e:  # a non-finite payload number, a timestamp out of range
        raise DecodeError(f"EventEnvelope has an unusable field: {e}") from e


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
