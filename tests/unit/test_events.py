from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from services.core.events import Event, Metadata, topic_for
from services.infra.codec import DecodeError, decode_event, encode_event


@pytest.mark.parametrize(
    ("event_type", "topic"),
    [
        ("sensor.reading", "sensor-events"),
        ("sensor.battery.low", "sensor-events"),
        ("user.login", "user-actions"),
        ("system.alert", "system-events"),
        ("order.placed", "system-events"),
        ("sensorx.reading", "system-events"),
    ],
)
def test_topic_routing_by_prefix(event_type: str, topic: str) -> None:
    assert topic_for(event_type) == topic


def make_event() -> Event:
    return Event(
        event_id="01a21c3d-a9b4-70de-94e0-909f717c8446",
        event_type="sensor.reading",
        aggregate_id="dev-1",
        event_time=datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC),
        ingested_at=datetime(2026, 1, 1, 12, 0, 1, tzinfo=UTC),
        payload={"value": 21.5, "unit": "C", "tags": {"room": "a"}, "ok": True},
        metadata=Metadata(trace_id="abc", source="http", schema_version=1),
    )


def test_protobuf_envelope_round_trip() -> None:
    ev = make_event()
    assert decode_event(encode_event(ev)) == ev


def test_outbox_dict_round_trip() -> None:
    ev = make_event()
    assert Event.from_dict(ev.to_dict()) == ev


def test_subject_is_kept_in_the_outbox_form_only_when_set() -> None:
    ev = make_event()
    assert "subject" not in ev.to_dict()["metadata"]
    signed = dataclasses.replace(ev, metadata=Metadata(source="http", subject="alice"))
    assert signed.to_dict()["metadata"]["subject"] == "alice"
    assert Event.from_dict(signed.to_dict()) == signed


@pytest.mark.parametrize("raw", [b"\xff\xff\xff", b"", b"\x0a\x03abc"])
def test_undecodable_bytes_raise_decode_error(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_event(raw)
