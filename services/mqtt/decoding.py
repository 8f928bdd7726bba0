"""Turn a publish body into event requests, or a precise reason it cannot be (pure).

Deeper checks (event type format, payload size, catalog fields) stay in ingestion so that
MQTT devices get exactly the rules HTTP and gRPC callers get.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from services.core.json_kinds import json_kind
from services.mqtt.ports import EventRequest
from services.mqtt.topics import Address, Form

ENVELOPE_FIELDS = frozenset({"payload", "event_time", "trace_id", "idempotency_key", "ack"})
BATCH_FIELDS = frozenset({"events", "ack"})
BATCH_EVENT_FIELDS = frozenset(
    {"event_type", "aggregate_id", "payload", "event_time", "trace_id", "idempotency_key"}
)
# Objects and arrays nested in a payload, itself included: the most one IngestEventsRequest
# carries to ingestion (Protobuf's limit of 100 nested messages; each level is two or three).
MAX_PAYLOAD_DEPTH = 32


class DecodeError(ValueError):
    """``code`` is machine-readable (invalid_json, invalid_body); the message says what to fix."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def decode(
    address: Address, body: bytes, *, new_key: Callable[[], str], max_events: int
) -> tuple[list[EventRequest], bool]:
    """Return the events a publish carries and whether the device asked for an ack.

    ``new_key`` names events the device gave no idempotency key: the gateway may send a
    request again after an ambiguous failure and must not create a second event then.
    """
    doc = _json(body)
    if not isinstance(doc, dict):
        raise DecodeError("invalid_body", f"the body must be a JSON object, got {json_kind(doc)}")
    if address.form is Form.PAYLOAD:
        _shallow(doc, "")
        return [EventRequest(address.event_type, address.aggregate_id, doc, new_key())], False
    if address.form is Form.ENVELOPE:
        _only(doc, ENVELOPE_FIELDS, "envelope")
        event = _event(doc, address.event_type, address.aggregate_id, new_key, where="")
        return [event], _ack(doc)
    _only(doc, BATCH_FIELDS, "batch")
    items = doc.get("events")
    if not isinstance(items, list) or not items:
        raise DecodeError("invalid_body", "'events' must be a non-empty array of events")
    if len(items) > max_events:
        raise DecodeError(
            "invalid_body", f"a batch holds at most {max_events} events, got {len(items)}"
        )
    events = []
    for i, item in enumerate(items):
        where = f"events[{i}]: "
        if not isinstance(item, dict):
            raise DecodeError("invalid_body", f"{where}must be an object, got {json_kind(item)}")
        _only(item, BATCH_EVENT_FIELDS, f"events[{i}]")
        event_type = _text(item, "event_type", where, required=True)
        aggregate_id = _text(item, "aggregate_id", where, required=True)
        events.append(_event(item, event_type, aggregate_id, new_key, where=where))
    return events, _ack(doc)


def _json(body: bytes) -> Any:
    try:
        return json.loads(
            body.decode("utf-8"),
            parse_constant=_no_constant,
            parse_int=_int,
            parse_float=_float,
        )
    except UnicodeDecodeError:
        raise DecodeError("invalid_json", "the body is not UTF-8 text") from None
    except json.JSONDecodeError as e:
        where = f"line {e.lineno} column {e.colno}"
        message = f"the body is not valid JSON: {e.msg} at {where}"
        raise DecodeError("invalid_json", message) from None
    except RecursionError:
        raise DecodeError("invalid_json", "the body nests too deeply to be read") from None


def _no_constant(name: str) -> Any:
    raise DecodeError("invalid_json", f"the body is not valid JSON: {name} is not a JSON number")


# Payloads travel as Protobuf Struct, whose numbers are doubles: a number no double holds
# would fail the gateway's call to ingestion on every retry instead of being refused here.
def _int(text: str) -> int:
    try:
        value = int(text)
        float(value)
    except (ValueError, OverflowError):  # > 4300 digits, or beyond a double
        raise DecodeError("invalid_json", f"the number {_clip(text)} is out of range") from None
    return value


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise DecodeError("invalid_json", f"the number {_clip(text)} is out of range")
    return value


def _clip(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:12]}...({len(text)} digits)"


def _event(
    doc: dict[str, Any],
    event_type: str,
    aggregate_id: str,
    new_key: Callable[[], str],
    *,
    where: str,
) -> EventRequest:
    payload = doc.get("payload")
    if not isinstance(payload, dict):
        got = "nothing" if payload is None else json_kind(payload)
        raise DecodeError("invalid_body", f"{where}'payload' must be a JSON object, got {got}")
    _shallow(payload, where)
    when = _text(doc, "event_time", where)
    event_time = None
    if when:
        try:
            event_time = datetime.fromisoformat(when)
        except ValueError:
            raise DecodeError(
                "invalid_body",
                f"{where}'event_time' {when!r} is not an RFC 3339 time like 2026-01-02T03:04:05Z",
            ) from None
        if event_time.tzinfo is None:
            raise DecodeError(
                "invalid_body", f"{where}'event_time' {when!r} needs a UTC offset (e.g. Z)"
            )
    return EventRequest(
        event_type=event_type,
        aggregate_id=aggregate_id,
        payload=payload,
        idempotency_key=_text(doc, "idempotency_key", where) or new_key(),
        event_time=event_time,
        trace_id=_text(doc, "trace_id", where),
    )


def _shallow(payload: dict[str, Any], where: str) -> None:
    level: list[Any] = [payload]
    for _ in range(MAX_PAYLOAD_DEPTH):
        level = [
            x
            for c in level
            for x in (c.values() if isinstance(c, dict) else c)
            if isinstance(x, dict | list)
        ]
        if not level:
            return
    raise DecodeError(
        "invalid_body",
        f"{where}the payload nests deeper than {MAX_PAYLOAD_DEPTH} levels of objects and arrays",
    )


def _text(doc: dict[str, Any], name: str, where: str, *, required: bool = False) -> str:
    value = doc.get(name)
    if value is None:
        if required:
            raise DecodeError("invalid_body", f"{where}'{name}' is required")
        return ""
    if not isinstance(value, str):
        raise DecodeError(
            "invalid_body", f"{where}'{name}' must be a string, got {json_kind(value)}"
        )
    return value


def _ack(doc: dict[str, Any]) -> bool:
    value = doc.get("ack", False)
    if not isinstance(value, bool):
        raise DecodeError("invalid_body", f"'ack' must be true or false, got {json_kind(value)}")
    return value


def _only(doc: dict[str, Any], allowed: frozenset[str], what: str) -> None:
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise DecodeError(
            "invalid_body",
            f"unknown field {unknown[0]!r} in the {what}; allowed: {', '.join(sorted(allowed))}",
        )
