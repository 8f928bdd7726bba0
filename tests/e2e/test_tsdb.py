"""Time series through the whole stack: readings over HTTP and MQTT become series that Envoy
serves under /api/v1/devices/...; aggregates equal a direct computation over the event
store; attacks on the series routes (scopes, limits, odd input) get their rows in the
attack table."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
import psycopg
import pytest

from services.cli.stack import Stack
from services.tsdb.series import Aggregate, floor_time
from tests.support import MqttDevice, eventually, token, unique

pytestmark = pytest.mark.e2e

Log = list[tuple[str, str, str, bool]]


def series(http: httpx.Client, device: str, metric: str, **params: str) -> httpx.Response:
    return http.get(f"/api/v1/devices/{quote(device, safe='')}/series/{metric}", params=params)


def points_in_store(stack: Stack, device: str) -> int:
    with psycopg.connect(stack.postgres.url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM tsdb.points WHERE device = %s", (device,)
        ).fetchone()
    return int(row[0]) if row else 0


def from_event_store(stack: Stack, device: str, metric: str) -> list[tuple[datetime, str, float]]:
    with psycopg.connect(stack.postgres.url) as conn:
        rows = conn.execute(
            "SELECT event_time, event_id::text, (payload->>%s)::float8 FROM ingestion.event_store "
            "WHERE aggregate_id = %s AND payload ? %s",
            (metric, device, metric),
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def test_http_readings_aggregate_like_the_event_store(stack: Stack, http: httpx.Client) -> None:
    device = unique("tsdb-http")
    rng = random.Random(11)
    base = floor_time(datetime.now(UTC), timedelta(hours=1)) - timedelta(hours=2)
    events = [
        {
            "event_type": "sensor.reading",
            "aggregate_id": device,
            "event_time": (base + timedelta(seconds=rng.randrange(0, 2 * 3600))).isoformat(),
            "payload": {"value": round(rng.uniform(10, 30), 3), "unit": "C"},
        }
        for _ in range(120)
    ]
    for i in range(0, len(events), 40):
        r = http.post("/api/v1/events:batch", json={"events": events[i : i + 40]})
        assert r.status_code == 200 and r.json()["accepted"] == 40, r.text
    eventually(lambda: points_in_store(stack, device) == 120, timeout=60, what="120 points")
    truth = from_event_store(stack, device, "value")
    assert len(truth) == 120
    start, end = base + timedelta(minutes=7, seconds=30), base + timedelta(hours=2)
    for bucket, step, source in (
        ("1h", timedelta(hours=1), "rollup_1h"),
        ("10m", timedelta(minutes=10), "rollup_1m"),
        ("30s", timedelta(seconds=30), "raw"),
    ):
        r = series(
            http, device, "value", start=start.isoformat(), end=end.isoformat(), bucket=bucket
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["source"] == source
        want: dict[datetime, list[tuple[datetime, str, float]]] = {}
        for p in truth:
            if start <= p[0] < end:
                want.setdefault(floor_time(p[0], step), []).append(p)
        origin, size = datetime.fromisoformat(body["origin"]), int(body["bucket_seconds"])
        assert size == step.total_seconds()
        got = {
            origin + i * step: {
                k: body[k][n] for k in ("count", "sum", "min", "max", "avg", "first", "last")
            }
            for n, i in enumerate(body["index"])
        }
        assert sorted(got) == sorted(want), bucket
        for t, pts in want.items():
            w, b = Aggregate.of(pts), got[t]
            assert int(b["count"]) == w.count
            assert (b["min"], b["max"], b["first"], b["last"]) == (w.min, w.max, w.first, w.last)
            assert b["sum"] == pytest.approx(w.sum) and b["avg"] == pytest.approx(w.avg)
        # Only some aggregates: the same buckets, the other columns empty (both forms of a
        # list in a query string).
        asked: list[str | list[str]] = ["avg,max", ["avg", "max"]]
        for aggregates in asked:
            r = http.get(
                f"/api/v1/devices/{quote(device, safe='')}/series/value",
                params={
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                    "bucket": bucket,
                    "aggregates": aggregates,
                },
            )
            assert r.status_code == 200, r.text
            some = r.json()
            assert some["index"] == body["index"] and some["max"] == body["max"], bucket
            assert some["avg"] == pytest.approx(body["avg"])
            left_out = {k: some.get(k) for k in ("count", "sum", "min", "first", "last")}
            assert not any(left_out.values()), left_out  # empty (Envoy prints [])


def test_mqtt_readings_appear_in_latest_values(stack: Stack, http: httpx.Client) -> None:
    device = unique("tsdb-mqtt")
    dev = MqttDevice(stack.settings.mqtt_port, unique("anon"))
    try:
        for v in (1.0, 2.0, 3.5):
            dev.wait_acked(
                dev.publish(
                    f"cornjacket/v1/events/sensor.reading/{device}",
                    {"value": v, "amps": 2, "unit": "V"},
                )
            )
    finally:
        dev.close()

    committed = len(from_event_store(stack, device, "value"))
    eventually(
        lambda: points_in_store(stack, device) == 6,
        timeout=60,
        what=f"6 points (event store has {committed} of 3 events so far)",
    )
    r = http.get(f"/api/v1/devices/{device}/latest")
    assert r.status_code == 200, r.text
    values = {v["metric"]: v["value"] for v in r.json()["values"]}
    newest = max(from_event_store(stack, device, "value"))
    assert values == {"amps": 2.0, "value": newest[2]}
    listed = http.get("/api/v1/series", params={"device_prefix": device}).json()
    assert [(s["device"], s["metric"]) for s in listed["series"]] == [
        (device, "amps"),
        (device, "value"),
    ]


NOW = "2026-05-01T12:00:00Z"
LATER = "2026-05-01T13:00:00Z"


def _attacks(stack: Stack) -> list[tuple[str, Callable[[httpx.Client], httpx.Response], int, str]]:
    write_only = {"Authorization": f"Bearer {token(stack, 'events:write')}"}
    return [
        (
            "series read without a token",
            lambda h: h.get("/api/v1/devices/d/latest", headers={"Authorization": ""}),
            401,
            "",
        ),
        (
            "series read with an events:write-only token",
            lambda h: h.get("/api/v1/devices/d/latest", headers=write_only),
            403,
            "",
        ),
        (
            "one request for a year in 1s buckets",
            lambda h: series(h, "d", "temp", start="2025-05-01T00:00:00Z", end=NOW, bucket="1s"),
            400,
            "at most 10000 per answer",
        ),
        (
            "bucket of a week",
            lambda h: series(h, "d", "temp", start=NOW, end=LATER, bucket="7d"),
            400,
            "outside 1s..1d",
        ),
        (
            "range backwards",
            lambda h: series(h, "d", "temp", start=LATER, end=NOW, bucket="1m"),
            400,
            "must be before",
        ),
        (
            "time without a zone",
            lambda h: series(h, "d", "temp", start="2026-05-01T12:00:00", end=LATER),
            400,
            "time zone",
        ),
        (
            "unknown aggregate",
            lambda h: series(h, "d", "temp", start=NOW, end=LATER, aggregates="avg,median"),
            400,
            "'median' unknown: choose from count, sum, min, max, avg, first, last",
        ),
        (
            "SQL in the device name",
            lambda h: series(h, "x' OR '1'='1", "temp", start=NOW, end=LATER, bucket="1m"),
            200,
            '"index":[]',
        ),
        (
            "SQL in the metric name",
            lambda h: series(h, "d", "temp';DROP TABLE tsdb.points;--", start=NOW, end=LATER),
            400,
            "not a metric name",
        ),
        (
            "forged page token",
            lambda h: h.get("/api/v1/series", params={"page_token": "garbage"}),
            400,
            "page_token",
        ),
        (
            "page of a million series",
            lambda h: h.get("/api/v1/series", params={"limit": "1000000"}),
            400,
            "outside 1..1000",
        ),
    ]


def test_series_route_attacks(stack: Stack, http: httpx.Client, attack_log: Log) -> None:
    failures = []
    for name, call, status, text in _attacks(stack):
        r = call(http)
        ok = r.status_code == status and text in r.text
        attack_log.append((f"tsdb: {name}", f"{status} {text}".strip(), f"{r.status_code}", ok))
        if not ok:
            failures.append((name, r.status_code, r.text[:300]))
    assert not failures
    # Nothing above took the service down or dropped a table.
    assert http.get("/health").status_code == 200
    assert points_in_store(stack, "no-such-device") == 0


def test_python_sdk_reads_series(stack: Stack, http: httpx.Client) -> None:
    from cornjacket_sdk import Client

    device = unique("tsdb-sdk")
    now = datetime.now(UTC)
    body = {"event_type": "sensor.reading", "aggregate_id": device}
    for v in (1.0, 4.0):
        r = http.post("/api/v1/events", json={**body, "payload": {"value": v, "unit": "C"}})
        assert r.status_code == 202, r.text
    eventually(lambda: points_in_store(stack, device) == 2, timeout=60, what="2 points")
    with Client(f"127.0.0.1:{stack.settings.edge_port}", token=stack.admin_token) as cj:
        answer = cj.get_series(
            device, "value", now - timedelta(minutes=5), now + timedelta(minutes=5), bucket="1d"
        )
        # One bucket, or two if the range crosses midnight.
        assert (sum(answer.count), sum(answer.sum)) == (2, 5.0)
        only = cj.get_series(
            device,
            "value",
            now - timedelta(minutes=5),
            now + timedelta(minutes=5),
            bucket="1d",
            aggregates=["max", "min"],
        )
        assert (only.max, only.min) == (answer.max, answer.min)
        assert only.index == answer.index and only.count == only.avg == []
        assert [v.metric for v in cj.latest_values(device).values] == ["value"]
        assert [s.device for s in cj.list_series(device_prefix=device).series] == [device]
