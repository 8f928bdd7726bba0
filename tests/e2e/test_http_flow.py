"""Drive the running stack through Envoy with a plain HTTP client, as a user would."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from services.cli.stack import Stack
from tests.support import eventually, fetch_one, unique

pytestmark = pytest.mark.e2e

UUIDV7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def post_reading(
    http: httpx.Client, agg: str, value: float, event_time: str | None = None
) -> httpx.Response:
    body: dict[str, object] = {
        "event_type": "sensor.reading",
        "aggregate_id": agg,
        "payload": {"value": value, "unit": "C"},
    }
    if event_time:
        body["event_time"] = event_time
    return http.post("/api/v1/events", json=body)


def projection(http: httpx.Client, agg: str) -> dict[str, object] | None:
    r = http.get(f"/api/v1/projections/sensor_state/{agg}")
    return r.json() if r.status_code == 200 else None


def test_health(http: httpx.Client) -> None:
    r = http.get("/health")
    assert (r.status_code, r.json()) == (200, {"status": "healthy"})


def test_ingest_then_read_projection(http: httpx.Client, stack: Stack) -> None:
    agg = unique("dev")
    r = post_reading(http, agg, 72.5, "2026-01-01T10:00:00Z")
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "accepted" and UUIDV7.match(body["event_id"])
    p = eventually(lambda: projection(http, agg), timeout=5, what="projection")
    assert set(p) == {
        "projection_id",
        "projection_type",
        "aggregate_id",
        "state",
        "last_event_id",
        "last_event_timestamp",
        "updated_at",
    }
    assert p["state"] == {"value": 72.5, "unit": "C"}
    assert p["last_event_id"] == body["event_id"]
    assert p["last_event_timestamp"] == "2026-01-01T10:00:00Z"

    newer = post_reading(http, agg, 80.0, "2026-01-01T11:00:00Z").json()["event_id"]
    eventually(
        lambda: (projection(http, agg) or {}).get("last_event_id") == newer, what="newer wins"
    )
    older = post_reading(http, agg, 10.0, "2026-01-01T09:00:00Z").json()["event_id"]
    # The older event is stored but must not overwrite the projection.
    eventually(
        lambda: fetch_one(
            stack.postgres.url, "SELECT 1 FROM ingestion.event_store WHERE event_id = %s", (older,)
        ),
        what="older event stored",
    )
    marker = unique("marker")
    post_reading(http, marker, 1.0)
    eventually(lambda: projection(http, marker), what="marker processed")
    assert (projection(http, agg) or {})["state"] == {"value": 80.0, "unit": "C"}

    url = stack.postgres.url
    assert fetch_one(
        url, "SELECT count(*) FROM ingestion.event_store WHERE event_id = %s", (body["event_id"],)
    ) == (1,)
    eventually(
        lambda: fetch_one(url, "SELECT count(*) FROM ingestion.outbox") == (0,), what="outbox empty"
    )


def test_list_pages_with_total(http: httpx.Client) -> None:
    prefix = unique("page")
    for i in range(3):
        assert post_reading(http, f"{prefix}-{i}", float(i)).status_code == 202
    eventually(lambda: projection(http, f"{prefix}-2"), what="three projections")
    page = http.get("/api/v1/projections/sensor_state", params={"limit": 2, "offset": 0}).json()
    assert page["limit"] == 2 and page["offset"] == 0 and len(page["projections"]) == 2
    total = page["total"]
    assert total >= 3
    last = http.get(
        "/api/v1/projections/sensor_state", params={"limit": 100, "offset": total - 1}
    ).json()
    assert len(last["projections"]) == 1
    default = http.get("/api/v1/projections/sensor_state").json()
    assert default["limit"] == 20 and default["offset"] == 0


def test_idempotency_key_header(http: httpx.Client) -> None:
    agg = unique("idem")
    body = {
        "event_type": "sensor.reading",
        "aggregate_id": agg,
        "payload": {"value": 1, "unit": "C"},
    }
    key = unique("key")
    a = http.post("/api/v1/events", json=body, headers={"Idempotency-Key": key})
    b = http.post("/api/v1/events", json=body, headers={"Idempotency-Key": key})
    assert a.status_code == b.status_code == 202
    assert a.json()["event_id"] == b.json()["event_id"] and b.json()["status"] == "duplicate"


def test_batch_route(http: httpx.Client) -> None:
    agg = unique("batch")
    events = [
        {"event_type": "sensor.reading", "aggregate_id": agg, "payload": {"value": 1, "unit": "C"}},
        {"event_type": "", "aggregate_id": agg, "payload": {}},
    ]
    r = http.post("/api/v1/events:batch", json={"events": events})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert body["results"][1] == {
        "index": 1,
        "event_id": "",
        "status": "rejected",
        "error": "event_type is required",
    }


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ('{"aggregate_id":"x","payload":{}}', "event_type is required"),
        (
            '{"event_type":"sensor.reading","payload":{"value":1,"unit":"C"}}',
            "aggregate_id is required",
        ),
        (
            '{"event_type":"a.b","aggregate_id":"x","payload":5}',
            "payload must be a JSON object, not a number",
        ),
        (
            '{"event_type":"a.b","aggregate_id":"x","payload":[1]}',
            "payload must be a JSON object, not an array",
        ),
        ('{"event_type":"a.b","aggregate_id":"x","payload":null}', "payload is required"),
        ('{"event_type":"a.b","aggregate_id":"x"}', "payload is required"),
        ("{not json", ""),
        (
            '{"event_type":"a.b","aggregate_id":"x","payload":{},"event_time":"yesterday"}',
            "event_time",
        ),
        (
            '{"event_type":"sensor.reading","aggregate_id":"x","payload":{"value":"hot","unit":"C"}}',
            "payload.value",
        ),
    ],
)
def test_bad_input_is_400_with_message(
    http: httpx.Client, stack: Stack, body: str, needle: str
) -> None:
    agg = unique("bad")
    body = body.replace('"aggregate_id":"x"', f'"aggregate_id":"{agg}"')
    r = http.post("/api/v1/events", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    message = r.json()["message"]
    assert message and needle in message
    # One error shape for service and edge errors alike: code is the gRPC status code.
    assert r.json()["code"] == 3 and r.json()["details"] == []
    url = stack.postgres.url
    sql = "SELECT count(*) FROM ingestion.outbox WHERE event_payload->>'aggregate_id' = %s"
    assert fetch_one(url, sql, (agg,)) == (0,)
    sql = "SELECT count(*) FROM ingestion.event_store WHERE aggregate_id = %s"
    assert fetch_one(url, sql, (agg,)) == (0,)


def test_oversized_bodies_are_400(http: httpx.Client) -> None:
    payload = {"value": 1, "unit": "C", "blob": "x" * 70_000}
    body = {"event_type": "sensor.reading", "aggregate_id": unique("big"), "payload": payload}
    r = http.post("/api/v1/events", json=body)
    assert r.status_code == 400 and "limit is 65536 bytes" in r.json()["message"]
    r = http.post(
        "/api/v1/events",
        content=json.dumps({**body, "payload": {"blob": "x" * 2_000_000}}),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413 and "larger than" in r.json()["message"]


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "offset=-1", "limit=abc", "bogus=1"])
def test_bad_paging_is_400(http: httpx.Client, query: str) -> None:
    r = http.get(f"/api/v1/projections/sensor_state?{query}")
    assert r.status_code == 400, r.text
    assert r.json()["message"]


def test_missing_projection_is_404_and_unknown_route_is_404(http: httpx.Client) -> None:
    r = http.get(f"/api/v1/projections/sensor_state/{unique('none')}")
    assert r.status_code == 404 and "no sensor_state projection" in r.json()["message"]
    r = http.get("/nope")
    assert r.status_code == 404 and r.json() == {
        "code": 5,
        "message": "no route for this path",
        "details": [],
    }


def test_user_login_projection(http: httpx.Client) -> None:
    user = unique("user")
    r = http.post(
        "/api/v1/events",
        json={
            "event_type": "user.login",
            "aggregate_id": user,
            "payload": {"user_id": user, "ip": "10.0.0.9"},
        },
    )
    assert r.status_code == 202
    p = eventually(
        lambda: (lambda r: r.json() if r.status_code == 200 else None)(
            http.get(f"/api/v1/projections/user_session/{user}")
        ),
        what="user_session",
    )
    assert p["state"]["ip"] == "10.0.0.9"


def test_source_is_recorded_as_http(http: httpx.Client, stack: Stack) -> None:
    r = post_reading(http, unique("src"), 1.0)
    eid = r.json()["event_id"]
    row = eventually(
        lambda: fetch_one(
            stack.postgres.url,
            "SELECT metadata FROM ingestion.event_store WHERE event_id = %s",
            (eid,),
        ),
        what="stored",
    )
    assert row[0]["source"] == "http"
