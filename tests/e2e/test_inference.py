"""Issue 18 end to end through Envoy: readings over HTTP, the inference service's ai.anomaly
back through ingestion, a rule on it delivering a signed webhook, device_health, lineage and
the InferenceService routes with their scopes (attack rows in the table)."""

from __future__ import annotations

import base64
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import httpx
import pytest
from cornjacket_sdk.client import Client
from cornjacket_sdk.webhooks import verify

from services.cli.stack import Stack
from tests.support import eventually, token, unique
from tests.webhook_receiver import Receiver, receiver

pytestmark = pytest.mark.e2e

Log = list[tuple[str, str, str, bool]]
SECRET = "whsec_" + base64.b64encode(b"i" * 32).decode()
WARMUP = 30  # tests/e2e/conftest.py sets CJ_INFERENCE_WARMUP


def readings_start() -> datetime:
    """Where a device's readings start so that its spike lands five minutes before now:
    device_health is anomalous only while the last anomaly is within the query service's
    window (15 min). Taken when the readings are sent, not when the module is imported: in
    the full suite the module runs many minutes after collection, and a start taken then put
    the spike past the window (device_health read "ok")."""
    return datetime.now(UTC) - timedelta(minutes=5 * (WARMUP + 6))


@pytest.fixture(scope="module")
def hooks() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def send(http: httpx.Client, device: str, t0: datetime, i: int, value: float) -> str:
    r = http.post(
        "/api/v1/events",
        json={
            "event_type": "sensor.reading",
            "aggregate_id": device,
            "event_time": (t0 + timedelta(minutes=5 * i)).isoformat(),
            "payload": {"value": value, "unit": "C"},
        },
    )
    assert r.status_code == 202, r.text
    event_id: str = r.json()["event_id"]
    return event_id


def get(http: httpx.Client, path: str, **params: Any) -> dict[str, Any]:
    r = http.get(path, params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


@pytest.fixture(scope="module")
def spiked(http: httpx.Client, hooks: Receiver) -> dict[str, str]:
    """A device warmed up with calm readings, a rule on its anomalies, then one spike."""
    device, path = unique("dev"), f"/{unique('anomaly')}"
    r = http.post(
        "/api/v1/rules",
        json={
            "name": unique("rule"),
            "event_type_pattern": "ai.anomaly",
            "condition": f'aggregate_id == "{device}"',
            "target": {"url": hooks.url(path), "secrets": [SECRET]},
        },
    )
    assert r.status_code == 200, r.text
    t0 = readings_start()
    for i in range(WARMUP + 5):
        send(http, device, t0, i, 20.0 + 0.3 * math.sin(i * 1.7))
    spike = send(http, device, t0, WARMUP + 5, 45.0)
    return {"device": device, "path": path, "spike": spike}


def test_a_spike_over_http_fires_a_signed_webhook_for_its_ai_anomaly(
    spiked: dict[str, str], hooks: Receiver
) -> None:
    got = eventually(lambda: hooks.received(spiked["path"]), timeout=60, what="webhook")
    body = verify(SECRET, got[0].headers, got[0].body)
    assert body["type"] == "ai.anomaly"
    event = body["event"]
    assert event["aggregate_id"] == spiked["device"]
    p = event["payload"]
    assert p["source_event_id"] == spiked["spike"] and p["metric"] == "value"
    assert p["value"] == 45.0 and p["score"] >= p["threshold"] == 0.5
    assert p["expected"]["low"] < 20.0 < p["expected"]["high"] < 45.0
    assert (p["model"], p["model_version"]) == ("seasonal-robust", 2)
    assert len(got) == 1, "one anomaly, one webhook"


def test_device_health_turns_anomalous(spiked: dict[str, str], http: httpx.Client) -> None:
    def health() -> dict[str, Any] | None:
        r = http.get(f"/api/v1/projections/device_health/{spiked['device']}")
        return r.json() if r.status_code == 200 else None

    row = eventually(health, timeout=60, what="device_health")
    state = row["state"]
    assert state["status"] == "anomalous" and state["anomalies_24h"] == 1
    assert state["last_source_event_id"] == spiked["spike"] and state["last_score"] >= 0.5


def test_lineage_links_the_reading_and_its_anomaly(
    spiked: dict[str, str], http: httpx.Client
) -> None:
    def anomaly_hop() -> dict[str, Any] | None:
        hops = get(http, f"/api/v1/events/{spiked['spike']}/lineage")["hops"]
        done = [h for h in hops if h["stage"] == "anomaly" and h["status"] == "done"]
        return done[0] if done else None

    hop = eventually(anomaly_hop, timeout=60, what="anomaly hop")
    anomaly_id = hop["detail"].split()[1]
    hops = get(http, f"/api/v1/events/{anomaly_id}/lineage")["hops"]
    [cause] = [h for h in hops if h["stage"] == "caused_by"]
    assert spiked["spike"] in cause["detail"]


def test_the_inference_routes(spiked: dict[str, str], http: httpx.Client) -> None:
    device = spiked["device"]
    eventually(
        lambda: get(http, "/api/v1/inference/anomalies", device=device).get("anomalies"),
        timeout=60,
        what="anomaly listed",
    )
    [a] = get(http, "/api/v1/inference/anomalies", device=device)["anomalies"]
    assert a["source_event_id"] == spiked["spike"] and a["anomaly_event_id"]
    scores = get(http, f"/api/v1/inference/devices/{device}/scores", page_size=10)
    assert len(scores["scores"]) == 10 and scores["next_page_token"]
    model = get(http, f"/api/v1/inference/devices/{device}/model")
    assert model["models"][0]["warmed_up"] is True and model["warmup"] == str(WARMUP)


def _status(stack: Stack, method: str, path: str, auth: str | None) -> int:
    headers = {"Authorization": f"Bearer {auth}"} if auth else {}
    with httpx.Client(base_url=stack.edge_url, timeout=15) as c:
        return c.request(
            method, path, headers=headers, json={} if method == "POST" else None
        ).status_code


@pytest.mark.parametrize(
    ("name", "method", "path", "scopes", "expected"),
    [
        (
            "model reset with a read token",
            "POST",
            "/api/v1/inference/devices/d/model:reset",
            ("read",),
            403,
        ),
        (
            "model reset without a token",
            "POST",
            "/api/v1/inference/devices/d/model:reset",
            None,
            401,
        ),
        (
            "(control) scores with a read token",
            "GET",
            "/api/v1/inference/devices/d/scores",
            ("read",),
            200,
        ),
        (
            "scores with a write-only token",
            "GET",
            "/api/v1/inference/devices/d/scores",
            ("events:write",),
            403,
        ),
        ("anomalies without a token", "GET", "/api/v1/inference/anomalies", None, 401),
        (
            "internal GetEventAnomalies from outside",
            "POST",
            "/cornjacket.v1.InferenceService/GetEventAnomalies",
            ("read", "admin"),
            403,
        ),
    ],
)
def test_inference_route_attack(
    stack: Stack,
    attack_log: Log,
    name: str,
    method: str,
    path: str,
    scopes: tuple[str, ...] | None,
    expected: int,
) -> None:
    got = "?"
    try:
        auth = token(stack, *scopes) if scopes else None
        got = str(_status(stack, method, path, auth))
        assert got == str(expected)
    finally:
        attack_log.append((f"inference: {name}", str(expected), got, got == str(expected)))


@pytest.mark.parametrize("claimed_source", ["", "ai"])
def test_a_client_cannot_forge_an_ai_anomaly(
    stack: Stack, attack_log: Log, claimed_source: str
) -> None:
    """ai.* events come from the inference service only: a forged one would turn a device's
    health anomalous and fire the rules on anomalies. Claiming its source does not help:
    Envoy overwrites x-cj-source."""
    got = "?"
    headers = {"Authorization": f"Bearer {token(stack, 'events:write')}"}
    if claimed_source:
        headers["x-cj-source"] = claimed_source
    try:
        with httpx.Client(base_url=stack.edge_url, timeout=15) as c:
            r = c.post(
                "/api/v1/events",
                headers=headers,
                json={
                    "event_type": "ai.anomaly",
                    "aggregate_id": unique("dev"),
                    "payload": {"score": 1.0, "source_event_id": "x", "metric": "value"},
                },
            )
        got = str(r.status_code)
        assert r.status_code == 400, r.text
        assert "reserved" in r.json()["message"]
    finally:
        how = " claiming x-cj-source: ai" if claimed_source else ""
        attack_log.append(
            (f"inference: a client posts a forged ai.anomaly{how}", "400", got, got == "400")
        )


def test_the_python_sdk_reads_and_resets(spiked: dict[str, str], stack: Stack) -> None:
    device = spiked["device"]
    address = f"127.0.0.1:{stack.settings.edge_port}"
    with Client(address, token=token(stack, "read")) as reader:
        anomalies = eventually(
            lambda: reader.list_anomalies(device=device).anomalies, timeout=60, what="anomaly"
        )
        assert anomalies[0].source_event_id == spiked["spike"]
        first = reader.list_scores(device, page_size=20)
        rest = reader.list_scores(device, page_size=20, page_token=first.next_page_token)
        assert len(first.scores) + len(rest.scores) == WARMUP + 6 and not rest.next_page_token
        assert reader.model_status(device).models[0].warmed_up
        with pytest.raises(grpc.RpcError) as err:
            reader.reset_model(device)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with Client(address, token=token(stack, "admin")) as admin:
        assert admin.reset_model(device) == 1
