from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.core.errors import InvalidInput
from services.ingestion.validation import IngestCommand, validate

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def cmd(**kw: Any) -> IngestCommand:
    base: dict[str, Any] = {
        "event_type": "sensor.reading",
        "aggregate_id": "dev-1",
        "payload": {"value": 1.5, "unit": "C"},
    }
    base.update(kw)
    return IngestCommand(**base)


def check(c: IngestCommand, limit: int = 1024) -> int:
    return validate(c, now=NOW, max_payload_bytes=limit)


def test_valid_event_passes_and_reports_size() -> None:
    assert check(cmd()) == len(b'{"value":1.5,"unit":"C"}')


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"event_type": ""}, "event_type is required"),
        ({"event_type": "Sensor.Reading"}, "dot notation"),
        ({"event_type": "reading"}, "dot notation"),
        ({"event_type": "sensor..reading"}, "dot notation"),
        ({"event_type": "a." + "b" * 200}, "longer than 128"),
        ({"aggregate_id": ""}, "aggregate_id is required"),
        ({"aggregate_id": "   "}, "aggregate_id is required"),
        ({"aggregate_id": "x" * 257}, "longer than 256"),
        ({"aggregate_id": "a\nb"}, "control characters"),
        ({"payload": None}, "payload is required"),
        ({"payload": [1, 2]}, "must be a JSON object, not an array"),
        ({"payload": "text"}, "must be a JSON object, not a string"),
        ({"event_time": datetime(2026, 1, 1)}, "time zone"),
        ({"event_time": datetime(1960, 1, 1, tzinfo=UTC)}, "before 1970"),
        ({"event_time": NOW + timedelta(days=2)}, "future"),
        ({"trace_id": "t" * 200}, "trace_id"),
        ({"idempotency_key": "k" * 300}, "idempotency key"),
        ({"payload": {"unit": "C"}}, "payload.value is required"),
        ({"payload": {"value": "hot", "unit": "C"}}, "payload.value must be a number"),
        ({"payload": {"value": True, "unit": "C"}}, "payload.value must be a number"),
        ({"payload": {"value": 1, "unit": 3}}, "payload.unit must be a string"),
    ],
)
def test_rejections_name_the_problem(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        check(cmd(**kw))


def test_oversized_payload_is_rejected_with_sizes() -> None:
    big = {"value": 1, "unit": "C", "blob": "x" * 2000}
    with pytest.raises(InvalidInput, match=r"payload is \d+ bytes; the limit is 1024 bytes"):
        check(cmd(payload=big))


def test_unknown_event_types_only_need_an_object_payload() -> None:
    assert check(cmd(event_type="order.placed", payload={})) == 2


def test_user_login_catalog() -> None:
    check(cmd(event_type="user.login", payload={"user_id": "u1", "ip": "10.0.0.1"}))
    with pytest.raises(InvalidInput, match="payload.ip is required"):
        check(cmd(event_type="user.login", payload={"user_id": "u1"}))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"k": "x\x00y"}, "must not contain the NUL character"),
        ({"k\x00": 1}, "must not contain the NUL character"),
        ({"v": float("inf")}, "must be finite"),
        ({"v": float("nan")}, "must be finite"),
    ],
)
def test_payloads_postgresql_cannot_store_are_refused(
    payload: dict[str, object], message: str
) -> None:

    with pytest.raises(InvalidInput, match=message):
        validate(IngestCommand("a.b", "x", payload), now=NOW, max_payload_bytes=65536)


def test_a_literal_backslash_u0000_is_fine() -> None:

    validate(IngestCommand("a.b", "x", {"k": "\\u0000"}), now=NOW, max_payload_bytes=65536)


@pytest.mark.parametrize("source", ["http", "grpc", "mqtt"])
def test_ai_events_are_reserved_for_the_inference_service(source: str) -> None:
    anomaly = {"event_type": "ai.anomaly", "payload": {"score": 1.0}}
    with pytest.raises(InvalidInput, match=r"ai\.\* are reserved"):
        validate(cmd(**anomaly, source=source), now=NOW, max_payload_bytes=65536)
    validate(cmd(**anomaly, source="ai"), now=NOW, max_payload_bytes=65536)
