"""Live projections over HTTP (issue 19): WatchProjection through Envoy's transcoder as
Server-Sent Events with a token, on the shared stack; its attacks in the attack table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from services.cli.stack import Stack
from tests.support import eventually, token, unique

pytestmark = pytest.mark.e2e

Log = list[tuple[str, str, str, bool]]
WATCH = "/api/v1/watch/projections"


def sse(response: httpx.Response) -> Iterator[dict[str, Any]]:
    for line in response.iter_lines():
        if line.startswith("data:"):
            yield json.loads(line[5:])


@contextmanager
def watching(
    http: httpx.Client, ptype: str, **params: str
) -> Iterator[tuple[httpx.Response, Iterator[dict[str, Any]]]]:
    """A stream once a watcher slot is free: the server frees a closed stream's slot a moment
    after the client leaves (429 says "retry later"), e.g. after test_watch.py held them all."""

    def attempt() -> Any:
        cm = http.stream("GET", f"{WATCH}/{ptype}", params=params, timeout=60)
        response = cm.__enter__()
        if response.status_code == 429:
            response.read()
            cm.__exit__(None, None, None)
            return None
        return cm, response

    cm, response = eventually(attempt, what="a free watcher slot")
    try:
        yield response, sse(response) if response.status_code == 200 else iter(())
    finally:
        cm.__exit__(None, None, None)


def post(http: httpx.Client, agg: str, value: int) -> str:
    r = http.post(
        "/api/v1/events",
        json={
            "event_type": "sensor.reading",
            "aggregate_id": agg,
            "payload": {"value": value, "unit": "C"},
        },
    )
    assert r.status_code == 202, r.text
    event_id: str = r.json()["event_id"]
    return event_id


def until_state(messages: Iterator[dict[str, Any]], agg: str, value: int) -> dict[str, Any]:
    for msg in messages:
        assert "end" not in msg, msg
        p = msg.get("projection")
        if p and p["aggregate_id"] == agg and p["state"].get("value") == value:
            return msg
    raise AssertionError(f"the stream ended before {agg} showed {value}")


def test_a_projection_streams_over_sse_current_state_then_changes(http: httpx.Client) -> None:
    device = unique("wp")
    first_id = post(http, device, 1)
    # the stream shows the projection once the handler applied the event
    with watching(http, "sensor_state", aggregate_id=device) as (response, msgs):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        head = until_state(msgs, device, 1)
        assert head["projection"]["last_event_id"] == first_id
    # A new stream: the current state first, then the heartbeat, then each change.
    with watching(http, "sensor_state", aggregate_id=device) as (response, msgs):
        assert response.status_code == 200
        now = next(msgs)
        assert now["projection"]["state"] == {"value": 1, "unit": "C"} and now["position"]
        assert "heartbeat" in next(msgs)
        post(http, device, 2)
        changed = until_state(msgs, device, 2)
    # Resumed from the first state's position: the change after it, without a snapshot.
    with watching(http, "sensor_state", aggregate_id=device, position=now["position"]) as (
        response,
        msgs,
    ):
        assert response.status_code == 200
        again = until_state(msgs, device, 2)
        assert again["projection"]["last_event_id"] == changed["projection"]["last_event_id"]


def test_projection_stream_attacks(stack: Stack, http: httpx.Client, attack_log: Log) -> None:
    def row(attack: str, expected: int, got: httpx.Response, extra: bool = True) -> None:
        ok = got.status_code == expected and extra
        attack_log.append((attack, str(expected), f"{got.status_code} {got.text.strip()[:80]}", ok))
        assert ok, (attack, got.status_code, got.text)

    url = f"{WATCH}/sensor_state"
    with httpx.Client(base_url=stack.edge_url, timeout=15) as anon:
        with anon.stream("GET", url) as r:
            r.read()
            row("projection SSE stream without a token", 401, r)
        writer = {"Authorization": f"Bearer {token(stack, 'events:write')}"}
        with anon.stream("GET", url, headers=writer) as r:
            r.read()
            row("projection SSE stream with a token without the read scope", 403, r)
    with http.stream("GET", url, params={"position": "w1.garbage"}) as r:
        r.read()
        row("projection SSE stream from a forged position", 400, r, "position" in r.text)
    with http.stream("GET", f"{WATCH}/Not-A-Type") as r:
        r.read()
        row("projection SSE stream of a malformed type", 400, r, "projection_type" in r.text)
    with http.stream("GET", url, params={"aggregate_id": "x" * 300}) as r:
        r.read()
        row(
            "projection SSE stream with an oversized aggregate id", 400, r, "aggregate_id" in r.text
        )
