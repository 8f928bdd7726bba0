"""Where is event X: the lineage API through Envoy and `cornjacket trace`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import uuid_utils

from services.cli.stack import Stack
from tests.support import cornjacket, eventually, unique

pytestmark = pytest.mark.e2e


def ingest(http: httpx.Client, agg: str, value: float, **extra: Any) -> str:
    r = http.post(
        "/api/v1/events",
        json={
            "event_type": "sensor.reading",
            "aggregate_id": agg,
            "payload": {"value": value, "unit": "C"},
            **extra,
        },
    )
    assert r.status_code == 202, r.text
    return str(r.json()["event_id"])


def hops(http: httpx.Client, event_id: str) -> list[dict[str, Any]]:
    r = http.get(f"/api/v1/events/{event_id}/lineage")
    assert r.status_code == 200, r.text
    return list(r.json()["hops"])


def stage(found: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [h for h in found if h["stage"] == name]


def test_lineage_follows_an_event_to_its_projection(stack: Stack, http: httpx.Client) -> None:
    agg = unique("lineage")
    newer = ingest(http, agg, 2.0, event_time="2026-11-27T10:00:00Z")
    older = ingest(http, agg, 1.0, event_time="2026-11-27T09:00:00Z")

    def settled(h: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        # The relay commits after the broker's ack, so the handler may apply an event a
        # moment before the event store shows it: wait for both.
        stored = stage(h, "event_store")
        done = stage(h, "projection")[0]["status"] == "done"
        return h if done and stored and stored[0]["status"] == "done" else None

    found = eventually(lambda: settled(hops(http, newer)), what="the newer event settled")
    assert stage(found, "accepted")[0]["detail"].startswith("via http")
    assert stage(found, "event_store")[0]["status"] == "done"
    published = stage(found, "published")[0]
    assert published["status"] == "done" and published["detail"].startswith(
        "sensor-events partition "
    )
    assert f"sensor_state/{agg} reflects it" in stage(found, "projection")[0]["detail"]
    # The older event (by event_time) arrived later: newer-wins kept the newer one.
    old = eventually(
        lambda: (lambda h: h if stage(h, "projection")[0]["status"] == "superseded" else None)(
            hops(http, older)
        ),
        what="the older event superseded",
    )
    assert newer in stage(old, "projection")[0]["detail"]

    out = cornjacket(
        "trace",
        newer,
        "--edge",
        f"127.0.0.1:{stack.settings.edge_port}",
        env={"CJ_TOKEN": stack.admin_token},
    )
    assert out.returncode == 0, out.stderr
    assert "accepted" in out.stdout and "sensor-events partition" in out.stdout


def test_lineage_errors(stack: Stack, http: httpx.Client) -> None:
    r = http.get(f"/api/v1/events/{uuid_utils.uuid7()}/lineage")
    assert r.status_code == 404 and "never accepted" in r.json()["message"]
    r = http.get("/api/v1/events/not-an-id/lineage")
    assert r.status_code == 400 and "not a UUID" in r.json()["message"]
