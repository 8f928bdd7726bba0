"""Live streams across a swap of the embedded broker (`cornjacket up` swaps it for an empty one
when it grows, ADR 11): open WatchEvents and WatchProjection streams carry on with every event
accepted after the swap, and a position from before the swap is refused with a clear reason
(it names offsets of a bus that is gone). A stack of its own: the swap restarts its services."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from cornjacket_sdk import Client, FailedPrecondition

from services.cli.stack import Stack
from tests.support import bearer, eventually, running_stack, unique

pytestmark = pytest.mark.e2e

Log = list[tuple[str, str, str, bool]]


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("swap"), {}) as s:
        yield s


class Reader:
    """Reads one SSE stream on a thread of its own (a stream left unread through the swap
    would be cut off as a slow client): the messages so far, and whether it ended."""

    def __init__(self, http: httpx.Client, path: str, params: dict[str, str]) -> None:
        self.messages: list[dict[str, Any]] = []
        self.status = 0
        self.finished = threading.Event()
        self._opened = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(http, path, params), daemon=True)
        self._thread.start()
        self._opened.wait(60)

    def _run(self, http: httpx.Client, path: str, params: dict[str, str]) -> None:
        try:
            with http.stream("GET", path, params=params, timeout=120) as response:
                self.status = response.status_code
                self._opened.set()
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        self.messages.append(json.loads(line[5:]))
                    if self._stop.is_set():
                        return
        except httpx.HTTPError as e:
            self.messages.append({"broke": f"{type(e).__name__}: {e}"})
        finally:
            self._opened.set()
            self.finished.set()

    def events(self) -> list[str]:
        return [m["event"]["event_id"] for m in self.messages if "event" in m]

    def ends(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if "end" in m or "broke" in m]

    def close(self) -> None:
        self._stop.set()


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


@contextmanager
def reading(http: httpx.Client, path: str, **params: str) -> Iterator[Reader]:
    r = Reader(http, path, params)
    assert r.status == 200, r.messages
    try:
        yield r
    finally:
        r.close()


def test_open_streams_carry_on_across_a_broker_swap(own_stack: Stack, attack_log: Log) -> None:
    device = unique("swap")
    headers = bearer(own_stack)
    with (
        httpx.Client(base_url=own_stack.edge_url, timeout=30, headers=headers) as http,
        reading(http, "/api/v1/watch/events", aggregate_id=device) as events,
        reading(http, "/api/v1/watch/projections/sensor_state", aggregate_id=device) as states,
    ):
        before = [post(http, device, n) for n in range(1, 4)]
        eventually(lambda: events.events() == before, timeout=60, what="events before the swap")
        eventually(
            lambda: any(
                m.get("projection", {}).get("state", {}).get("value") == 3 for m in states.messages
            ),
            timeout=60,
            what="the projection before the swap",
        )
        old_position = next(m for m in events.messages if "event" in m)["position"]

        assert own_stack.rotate_broker(why="test: a swap under open streams")

        after = [post(http, device, n) for n in range(4, 7)]
        # Every event accepted after the swap arrives on the open stream, in order, no gap;
        # the stream neither ends nor goes quiet.
        eventually(
            lambda: events.events()[3:] == after or events.ends(),
            timeout=90,
            what="events after the swap on the open stream",
        )
        assert events.ends() == [], events.ends()
        assert events.events() == before + after
        eventually(
            lambda: (
                any(
                    m.get("projection", {}).get("state", {}).get("value") == 6
                    for m in states.messages
                )
                or states.ends()
            ),
            timeout=90,
            what="the projection after the swap on the open stream",
        )
        assert states.ends() == [], states.ends()

        # A stream opened after the swap without a position sees what comes next.
        with reading(http, "/api/v1/watch/events", aggregate_id=device) as fresh:
            eventually(lambda: fresh.messages, timeout=30, what="the new stream's heartbeat")
            later = post(http, device, 7)
            eventually(lambda: later in fresh.events(), timeout=60, what="a later event")
        eventually(lambda: later in events.events(), timeout=60, what="the later event")

        # A position from before the swap names offsets of a bus that is gone: refused with
        # the reason, never a stream that silently starts at the wrong place.
        with http.stream(
            "GET", "/api/v1/watch/events", params={"position": old_position}, timeout=30
        ) as r:
            r.read()
        ok = r.status_code == 400 and "replaced" in r.text
        attack_log.append(
            (
                "resume a stream from a position taken before a broker swap",
                "400 (FAILED_PRECONDITION)",
                f"{r.status_code} {r.text.strip()[:80]}",
                ok,
            )
        )
        assert ok, (r.status_code, r.text)

    # The Python SDK (gRPC through Envoy) surfaces it as its typed error, not retried.
    target = f"127.0.0.1:{own_stack.settings.edge_port}"
    with Client(target, token=own_stack.admin_token) as cj:
        stream = cj.watch_events(aggregate_id=device, position=old_position)
        with pytest.raises(FailedPrecondition, match="replaced"):
            next(iter(stream))
