"""Every service serves Prometheus metrics that move with the traffic."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.cli.stack import Stack
from tests.support import MqttDevice, eventually, unique

pytestmark = pytest.mark.e2e


def scrape(stack: Stack, service: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    port = stack.settings.metrics_ports[service]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_follow_an_event_through_the_pipeline(stack: Stack, http: httpx.Client) -> None:
    before = scrape(stack, "ingestion")
    agg = unique("metrics")
    r = http.post(
        "/api/v1/events",
        json={
            "event_type": "sensor.reading",
            "aggregate_id": agg,
            "payload": {"value": 1, "unit": "C"},
        },
    )
    assert r.status_code == 202
    bad = http.post(
        "/api/v1/events", json={"event_type": "nope", "aggregate_id": agg, "payload": {}}
    )
    assert bad.status_code == 400
    after = scrape(stack, "ingestion")
    name = "cornjacket_ingest_events_total"
    assert (
        value(after, name, source="http", result="accepted")
        == value(before, name, source="http", result="accepted") + 1
    )
    assert (
        value(after, name, source="http", result="rejected")
        == value(before, name, source="http", result="rejected") + 1
    )
    assert (
        value(
            after, "cornjacket_grpc_requests_total", method="IngestEvent", code="INVALID_ARGUMENT"
        )
        >= 1
    )

    eventually(
        lambda: http.get(f"/api/v1/projections/sensor_state/{agg}").status_code == 200,
        what="projection",
    )
    relay = scrape(stack, "relay")
    assert value(relay, "cornjacket_relay_events_total", result="published") >= 1
    assert value(relay, "cornjacket_relay_publish_seconds_count") >= 1
    assert ("cornjacket_outbox_depth", ()) in relay
    handler = eventually(
        lambda: (lambda m: m if any(k[0] == "cornjacket_consumer_lag" for k in m) else None)(
            scrape(stack, "eventhandler")
        ),
        what="consumer lag sampled",
    )
    assert value(handler, "cornjacket_handler_events_total", outcome="applied") >= 1
    assert value(handler, "cornjacket_handler_batch_seconds_count") >= 1
    query = scrape(stack, "query")
    assert value(query, "cornjacket_grpc_requests_total", method="GetProjection", code="OK") >= 1
    assert value(query, "process_resident_memory_bytes") > 0


def test_mqtt_gateway_counts_what_it_settles(stack: Stack) -> None:
    dev = MqttDevice(stack.settings.mqtt_port, unique("m"))
    try:
        before = scrape(stack, "mqtt")
        mid = dev.publish(
            f"cornjacket/v1/events/sensor.reading/{unique('m')}", {"value": 1, "unit": "C"}
        )
        dev.wait_acked(mid)
        mid = dev.publish("cornjacket/v1/events/sensor.reading/x", b"{broken")
        dev.wait_acked(mid)
        after = scrape(stack, "mqtt")
        name = "cornjacket_mqtt_messages_total"
        assert value(after, name, result="accepted") == value(before, name, result="accepted") + 1
        assert (
            value(after, name, result="invalid_json")
            == value(before, name, result="invalid_json") + 1
        )
    finally:
        dev.close()
