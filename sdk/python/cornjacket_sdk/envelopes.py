"""Build ingest requests from plain Python values."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cornjacket.v1 import ingestion_pb2
from google.protobuf import json_format, struct_pb2


def event(
    event_type: str,
    aggregate_id: str,
    payload: dict[str, Any],
    *,
    event_time: datetime | None = None,
    trace_id: str = "",
    idempotency_key: str = "",
) -> ingestion_pb2.IngestEventRequest:
    """``event("sensor.reading", "device-42", {"value": 21.5, "unit": "C"})``; ``event_time``
    must be timezone-aware (defaults to the time ingestion accepts it)."""
    if event_time is not None and event_time.tzinfo is None:
        raise ValueError("event_time must be timezone-aware, e.g. datetime.now(UTC)")
    value = struct_pb2.Value()
    json_format.ParseDict(payload, value)
    request = ingestion_pb2.IngestEventRequest(
        event_type=event_type,
        aggregate_id=aggregate_id,
        payload=value,
        trace_id=trace_id,
        idempotency_key=idempotency_key,
    )
    if event_time is not None:
        request.event_time.FromDatetime(event_time)
    return request
