"""Devices over MQTT (a real paho client) through the embedded gateway into projections."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from services.cli.stack import Stack
from tests.e2e.conftest import MQTT_PASSWORD
from tests.support import MqttDevice, eventually, fetch_one, unique

pytestmark = pytest.mark.e2e

# Committed events of an aggregate: the relay moves a row from the outbox to the event
# store in one transaction, so this sum never counts an event twice or misses one.
COMMITTED = (
    "SELECT (SELECT count(*) FROM ingestion.outbox WHERE event_payload->>'aggregate_id' = %s)"
    " + (SELECT count(*) FROM ingestion.event_store WHERE aggregate_id = %s)"
)


@pytest.fixture
def device_a(stack: Stack) -> Iterator[MqttDevice]:
    dev = MqttDevice(stack.settings.mqtt_port, unique("device-a."), "device-a", MQTT_PASSWORD)
    assert dev.connected, dev.connect_reason
    yield dev
    dev.close()


def stored(
    stack: Stack, aggregate_id: str
) -> list[tuple[str, dict[str, object], dict[str, object]]]:
    import psycopg

    with psycopg.connect(stack.postgres.url) as conn:
        rows = conn.execute(
            "SELECT event_id::text, payload, metadata FROM ingestion.event_store "
            "WHERE aggregate_id = %s ORDER BY event_id",
            (aggregate_id,),
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def test_qos1_reading_reaches_the_projection(stack: Stack, http: httpx.Client) -> None:
    agg = unique("mqtt-dev")
    dev = MqttDevice(stack.settings.mqtt_port, unique("anon"))  # anonymous: development stack
    try:
        mid = dev.publish(
            f"cornjacket/v1/events/sensor.reading/{agg}", {"value": 42.5, "unit": "C"}
        )
        dev.wait_acked(mid)
        # Acknowledged means committed: the event is in the outbox or already relayed.
        assert fetch_one(stack.postgres.url, COMMITTED, (agg, agg)) == (1,)
        p = eventually(
            lambda: (lambda r: r.json() if r.status_code == 200 else None)(
                http.get(f"/api/v1/projections/sensor_state/{agg}")
            ),
            what="sensor_state projection",
        )
        assert p["state"] == {"value": 42.5, "unit": "C"}
        events = eventually(lambda: stored(stack, agg), what="event in the event store")
        assert events[0][2]["source"] == "mqtt"
        assert events[0][0] == p["last_event_id"]
    finally:
        dev.close()


def test_ack_topic_answers_the_event_ids(stack: Stack, device_a: MqttDevice) -> None:
    mid = device_a.publish(
        "cornjacket/v1/envelopes/sensor.reading/device-a",
        {"payload": {"value": 1.5, "unit": "C"}, "ack": True, "trace_id": "trace-mqtt-1"},
        qos=2,
    )
    device_a.wait_acked(mid)
    acks = eventually(lambda: device_a.feedback("acks"), what="ack message")
    result = acks[0]["results"][0]
    assert result["status"] == "accepted"
    row = eventually(
        lambda: fetch_one(
            stack.postgres.url,
            "SELECT metadata->>'trace_id' FROM ingestion.event_store WHERE event_id = %s",
            (result["event_id"],),
        ),
        what="acked event in the event store",
    )
    assert row == ("trace-mqtt-1",)


def test_wrong_password_is_refused(stack: Stack) -> None:
    dev = MqttDevice(stack.settings.mqtt_port, unique("device-a."), "device-a", "not-the-password")
    try:
        assert not dev.connected
        assert "bad user name or password" in dev.connect_reason.lower(), dev.connect_reason
    finally:
        dev.close()


def test_publishing_outside_the_acl_is_refused_with_feedback(
    stack: Stack, device_a: MqttDevice
) -> None:
    mid = device_a.publish(
        "cornjacket/v1/events/sensor.reading/device-b", {"value": 1, "unit": "C"}
    )
    device_a.wait_acked(mid)
    errors = eventually(lambda: device_a.feedback("errors"), what="error feedback")
    assert errors[0]["code"] == "forbidden"
    assert "cornjacket/v1/events/sensor.reading/device-b" in errors[0]["message"]
    time.sleep(0.5)
    assert stored(stack, "device-b") == []


def test_subscribing_to_another_devices_feedback_is_refused(
    stack: Stack, device_a: MqttDevice
) -> None:
    granted: list[object] = []
    device_a.client.on_subscribe = lambda c, u, mid, codes, p: granted.extend(codes)
    device_a.client.subscribe("cornjacket/v1/clients/someone-else/#", qos=1)
    eventually(lambda: granted, what="SUBACK")
    assert granted[0].is_failure  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("topic", "body", "code"),
    [
        ("cornjacket/v1/events/sensor.reading/device-a", b'{"value": 1,', "invalid_json"),
        ("cornjacket/v1/events/sensor.reading/device-a", b"[1, 2, 3]", "invalid_body"),
        ("cornjacket/v1/events/sensor.reading/device-a", b'{"value": "hot"}', "rejected"),
        ("devices/device-a/reading", b"{}", "unknown_topic"),
        ("cornjacket/v1/events/sensor.reading/device-a", b"{}" + b" " * 300_000, "too_large"),
    ],
)
def test_malformed_publishes_get_error_feedback_and_no_event(
    stack: Stack, device_a: MqttDevice, topic: str, body: bytes, code: str
) -> None:
    before = fetch_one(stack.postgres.url, COMMITTED, ("device-a", "device-a"))
    mid = device_a.publish(topic, body)
    device_a.wait_acked(mid)
    errors = eventually(lambda: device_a.feedback("errors"), what="error feedback")
    assert errors[-1]["code"] == code, errors
    assert errors[-1]["packet_id"] == mid
    # The connection survives: the next good publish is accepted.
    mid = device_a.publish(
        "cornjacket/v1/envelopes/sensor.reading/device-a",
        json.dumps({"payload": {"value": 2.0, "unit": "C"}, "ack": True}),
    )
    device_a.wait_acked(mid)
    eventually(lambda: device_a.feedback("acks"), what="ack of the good publish")
    assert before is not None
    eventually(
        lambda: (
            fetch_one(stack.postgres.url, COMMITTED, ("device-a", "device-a")) == (before[0] + 1,)
        ),
        what="exactly the good event stored",
    )
