"""Issue 18 review (branch aifix) end to end through Envoy: hostile readings must neither
take the inference service down, nor freeze a model, nor lose an anomaly (attack rows)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support import eventually, unique

pytestmark = pytest.mark.e2e

Log = list[tuple[str, str, str, bool]]
WARMUP = 30  # tests/e2e/conftest.py sets CJ_INFERENCE_WARMUP
CALM = WARMUP + 5


def _send(http: httpx.Client, device: str, at: datetime, payload: dict[str, Any]) -> str:
    r = http.post(
        "/api/v1/events",
        json={
            "event_type": "sensor.reading",
            "aggregate_id": device,
            "event_time": at.isoformat(),
            "payload": {**payload, "unit": "C"},
        },
    )
    assert r.status_code == 202, r.text
    event_id: str = r.json()["event_id"]
    return event_id


def test_hostile_readings_neither_crash_nor_freeze_nor_lose_anomalies(
    http: httpx.Client, attack_log: Log
) -> None:
    device = unique("hostile")
    t0 = datetime.now(UTC) - timedelta(minutes=5 * (CALM + 2))  # now, not at collection
    long_name, ctrl_name = "m" * 250, "temp\u0001"
    for i in range(CALM):
        calm = 20.0 + 0.3 * math.sin(i * 1.7)
        payload: dict[str, Any] = {"value": calm, long_name: calm, ctrl_name: calm}
        payload["huge"] = 1e308 if i % 2 else -1e308  # overflowed the model state to inf
        _send(http, device, t0 + timedelta(minutes=5 * i), payload)
        if i == 3:  # 23 h ahead (ingestion allows 24 h): it froze learning for a day
            _send(http, device, datetime.now(UTC) + timedelta(hours=23), {"value": calm})
    spike = _send(http, device, t0 + timedelta(minutes=5 * CALM), {"value": 45.0})

    def listed() -> list[dict[str, Any]] | None:
        r = http.get("/api/v1/inference/anomalies", params={"device": device})
        items: list[dict[str, Any]] = r.json().get("anomalies", []) if r.status_code == 200 else []
        return [a for a in items if a.get("anomaly_event_id")] or None

    try:
        anomalies = eventually(listed, timeout=90, what="the spike's anomaly, sent")
        got = ",".join(a["source_event_id"] == spike and a["metric"] for a in anomalies)
    except AssertionError:
        got = "no anomaly (service down or model frozen)"
    attack_log.append(
        (
            "inference: +-1e308, 250-char and control-char metric names, a reading 23 h ahead",
            "value",
            got,
            got == "value",
        )
    )
    assert got == "value"
    r = http.get(f"/api/v1/inference/devices/{device}/model")
    assert r.status_code == 200, r.text
    models = r.json()["models"]
    metrics = sorted(m["metric"] for m in models)
    learned = int(models[0].get("observations", 0))
    got = f"metrics={metrics} observations={learned}"
    expected = f"metrics=['value'] observations={CALM + 1}"  # the future reading not learned
    attack_log.append(("inference: model after hostile readings", expected, got, got == expected))
    assert got == expected
