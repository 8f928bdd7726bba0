"""Live event streams over HTTP (issue 19): WatchEvents through Envoy's transcoder as
Server-Sent Events, on the shared stack (CJ_WATCH_MAX_WATCHERS=4, see conftest.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from services.cli.stack import Stack
from tests.support import eventually, token, unique

pytestmark = pytest.mark.e2e

Log = list[tuple[str, str, str, bool]]
WATCH = "/api/v1/watch/events"
MAX_WATCHERS = 4  # tests/e2e/conftest.py


def sse(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The JSON messages of a Server-Sent Events body ("data: {...}" and a blank line)."""
    for line in response.iter_lines():
        if line.startswith("data:"):
            yield json.loads(line[5:])


@contextmanager
def watching(http: httpx.Client, **params: str) -> Iterator[tuple[httpx.Response, Any]]:
    with http.stream("GET", WATCH, params=params, timeout=30) as response:
        yield response, sse(response) if response.status_code == 200 else iter(())


def post(http: httpx.Client, agg: str, n: int) -> str:
    r = http.post(
        "/api/v1/events",
        json={
            "event_type": "sensor.reading",
            "aggregate_id": agg,
            "payload": {"value": n, "unit": "C"},
        },
    )
    assert r.status_code == 202, r.text
    event_id: str = r.json()["event_id"]
    return event_id


def next_events(messages: Iterator[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    got = []
    for msg in messages:
        assert "end" not in msg, msg
        if "event" in msg:
            got.append(msg)
            if len(got) == count:
                return got
    raise AssertionError(f"stream ended after {len(got)} of {count} events")


def test_an_event_sent_over_http_appears_on_the_stream_and_resumes(http: httpx.Client) -> None:
    device = unique("watch")
    with watching(http, event_type_prefix="sensor.", aggregate_id=device) as (response, msgs):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        first = next(msgs)
        assert "heartbeat" in first and first["position"]
        sent = [post(http, device, n) for n in range(3)]
        got = next_events(msgs, 3)
    assert [m["event"]["event_id"] for m in got] == sent
    assert got[0]["event"]["aggregate_id"] == device
    assert got[0]["event"]["payload"] == {"value": 0, "unit": "C"}
    # resume after the first: the other two, no duplicate, no gap
    with watching(http, aggregate_id=device, position=got[0]["position"]) as (response, msgs):
        assert response.status_code == 200
        assert [m["event"]["event_id"] for m in next_events(msgs, 2)] == sent[1:]


def test_stream_attacks(stack: Stack, http: httpx.Client, attack_log: Log) -> None:
    def row(attack: str, expected: int, got: httpx.Response, extra: bool = True) -> None:
        ok = got.status_code == expected and extra
        attack_log.append((attack, str(expected), f"{got.status_code} {got.text.strip()[:80]}", ok))
        assert ok, (attack, got.status_code, got.text)

    with httpx.Client(base_url=stack.edge_url, timeout=15) as anon:
        with anon.stream("GET", WATCH) as r:
            r.read()
            row("SSE stream without a token", 401, r)
        with anon.stream("GET", WATCH, params={"access_token": stack.admin_token}) as r:
            r.read()
            row("SSE stream with the token in the query string", 401, r)
        writer = {"Authorization": f"Bearer {token(stack, 'events:write')}"}
        with anon.stream("GET", WATCH, headers=writer) as r:
            r.read()
            row("SSE stream with a token without the read scope", 403, r)
    with http.stream("GET", WATCH, params={"position": "w1.garbage"}) as r:
        r.read()
        row("SSE stream from a forged position", 400, r, "position" in r.text)
    with http.stream("GET", WATCH, params={"event_type_prefix": "x" * 300}) as r:
        r.read()
        row("SSE stream with an oversized filter", 400, r)

    # Every watcher slot taken (each holds a bus consumer): the next one is told so. The
    # held streams are read as they come (a thread each): a stream left unread is cut off as
    # a slow client once the bus moves on (other tests' events), which freed its slot and let
    # the extra stream in (found by a full run: it read an endless 200 until timing out).
    held: list[Any] = []
    ended: list[str] = []
    refused: list[str] = []  # why an attempt to hold one more was turned away (the last few)

    def drain(messages: Iterator[dict[str, Any]], n: int) -> None:
        try:
            for _ in messages:  # the same iterator: a stream's body is read once
                pass
            ended.append(f"held stream {n} ended by the server")
        except (httpx.HTTPError, RuntimeError) as e:
            ended.append(f"held stream {n} broke: {type(e).__name__} {e}")  # or closed at the end

    def hold_one() -> bool:
        # A subject of its own per stream: the per-subject cap (also 4) must not be what
        # turns one away, nor another test's stream under the shared admin token.
        reader = {"Authorization": f"Bearer {token(stack, 'read', subject=unique('slot'))}"}
        cm = http.stream("GET", WATCH, headers=reader, timeout=30)
        response = cm.__enter__()
        if response.status_code != 200:  # a slot of an earlier stream not yet released
            response.read()
            refused.append(f"{response.status_code} {response.text.strip()[:120]}")
            cm.__exit__(None, None, None)
            return False
        messages = sse(response)
        next(messages)
        held.append(cm)
        threading.Thread(target=drain, args=(messages, len(held)), daemon=True).start()
        return len(held) == MAX_WATCHERS

    try:
        try:
            eventually(hold_one, what="every watcher slot held")
        except AssertionError as e:
            raise AssertionError(
                f"{e}; held {len(held)} of {MAX_WATCHERS}; last refusals {refused[-3:]}; {ended}"
            ) from None
        with http.stream("GET", WATCH) as r:
            if r.status_code == 200:  # do not read an endless stream: say why it was let in
                raise AssertionError(
                    f"a stream beyond the bound was opened; {ended or 'none ended'}"
                )
            r.read()
            row(
                f"SSE stream beyond CJ_WATCH_MAX_WATCHERS={MAX_WATCHERS}",
                429,
                r,
                "CJ_WATCH_MAX_WATCHERS" in r.text,
            )
    finally:
        for cm in held:
            cm.__exit__(None, None, None)
