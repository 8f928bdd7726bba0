"""Boundary validation of incoming events: pure rules, no transport, no storage.

Every transport (HTTP via Envoy, gRPC, MQTT) builds an IngestCommand and calls
``validate``; a rejection carries a message precise enough for the caller to fix its input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.core import json_text
from services.core.errors import InvalidInput
from services.core.events import RESERVED_PREFIXES
from services.core.json_kinds import json_kind

EVENT_TYPE_RE = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+$")
MAX_EVENT_TYPE_LEN = 128
MAX_AGGREGATE_ID_LEN = 256
MAX_TRACE_ID_LEN = 128
MAX_IDEMPOTENCY_KEY_LEN = 256
# Events may carry their own time, but not one from the far future (clock skew allowance).
MAX_FUTURE_SKEW = timedelta(hours=24)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Required payload fields of the catalog's known types (DESIGN.md section 3).
CATALOG: dict[str, dict[str, tuple[type, ...]]] = {
    "sensor.reading": {"value": (int, float), "unit": (str,)},
    "user.login": {"user_id": (str,), "ip": (str,)},
    "system.alert": {"level": (str,), "message": (str,)},
}


@dataclass(frozen=True, slots=True)
class IngestCommand:
    """One event as a caller sent it, before validation."""

    event_type: str
    aggregate_id: str
    payload: Any
    event_time: datetime | None = None
    trace_id: str = ""
    idempotency_key: str = ""
    source: str = "grpc"
    span_id: str = ""
    subject: str = ""
    principal: str = ""  # whose idempotency key (grpc_api.principal_of)


_CONTROL_CHAR = re.compile(r"[\x00-\x1f\x7f]")


def _has_control_chars(text: str) -> bool:
    return _CONTROL_CHAR.search(text) is not None


def validate(cmd: IngestCommand, *, now: datetime, max_payload_bytes: int) -> int:
    """Raise InvalidInput naming the first problem; return the payload's encoded size."""
    if not cmd.event_type:
        raise InvalidInput("event_type is required")
    if len(cmd.event_type) > MAX_EVENT_TYPE_LEN:
        raise InvalidInput(f"event_type is longer than {MAX_EVENT_TYPE_LEN} characters")
    if not EVENT_TYPE_RE.match(cmd.event_type):
        raise InvalidInput(
            f"event_type {cmd.event_type!r} must be dot notation: lowercase segments of "
            "letters, digits, '_' or '-' separated by dots, e.g. 'sensor.reading'"
        )
    for prefix, source in RESERVED_PREFIXES.items():
        if cmd.event_type.startswith(prefix) and cmd.source != source:
            # Only a call from inside the mesh can carry that source (Envoy overwrites it).
            raise InvalidInput(
                f"event types {prefix}* are reserved for the platform's {source} service"
            )
    if not cmd.aggregate_id or not cmd.aggregate_id.strip():
        raise InvalidInput("aggregate_id is required")
    if len(cmd.aggregate_id) > MAX_AGGREGATE_ID_LEN:
        raise InvalidInput(f"aggregate_id is longer than {MAX_AGGREGATE_ID_LEN} characters")
    if _has_control_chars(cmd.aggregate_id):
        raise InvalidInput("aggregate_id must not contain control characters")
    if cmd.payload is None:
        raise InvalidInput("payload is required and must be a JSON object")
    if not isinstance(cmd.payload, dict):
        raise InvalidInput(f"payload must be a JSON object, not {json_kind(cmd.payload)}")
    # What PostgreSQL's jsonb cannot hold is refused here, where it cannot fail a commit
    # that other callers' events share (group commit).
    try:
        encoded = json_text.encode_payload(cmd.payload)
    except ValueError:
        raise InvalidInput("payload numbers must be finite (no NaN or Infinity)") from None
    if "\\u0000" in encoded.replace("\\\\", ""):
        raise InvalidInput("payload must not contain the NUL character (\\u0000)")
    size = len(encoded.encode())
    if size > max_payload_bytes:
        raise InvalidInput(f"payload is {size} bytes; the limit is {max_payload_bytes} bytes")
    if cmd.event_time is not None:
        if cmd.event_time.tzinfo is None:
            raise InvalidInput("event_time must carry a time zone (RFC 3339)")
        if cmd.event_time < EPOCH:
            raise InvalidInput("event_time must not be before 1970-01-01T00:00:00Z")
        if cmd.event_time > now + MAX_FUTURE_SKEW:
            raise InvalidInput("event_time is more than 24 hours in the future")
    if len(cmd.trace_id) > MAX_TRACE_ID_LEN or _has_control_chars(cmd.trace_id):
        raise InvalidInput(f"trace_id must be at most {MAX_TRACE_ID_LEN} printable characters")
    if len(cmd.idempotency_key) > MAX_IDEMPOTENCY_KEY_LEN or _has_control_chars(
        cmd.idempotency_key
    ):
        raise InvalidInput(
            f"idempotency key must be at most {MAX_IDEMPOTENCY_KEY_LEN} printable characters"
        )
    _validate_catalog(cmd.event_type, cmd.payload)
    return size


def _validate_catalog(event_type: str, payload: dict[str, Any]) -> None:
    schema = CATALOG.get(event_type)
    if schema is None:
        return
    for name, types in schema.items():
        if name not in payload:
            raise InvalidInput(f"payload.{name} is required for {event_type}")
        value = payload[name]
        # bool is an int in Python but not a number in JSON terms.
        if isinstance(value, bool) or not isinstance(value, types):
            expected = "a number" if float in types else "a string"
            raise InvalidInput(f"payload.{name} must be {expected} for {event_type}")
