"""Live streams per token (review of issue 19): one read token cannot hold every watcher
slot. A stack of its own (CJ_WATCH_MAX_WATCHERS=8, CJ_WATCH_MAX_PER_SUBJECT at its
default 4), through Envoy as Server-Sent Events."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.cli.stack import Stack
from tests.support import running_stack, token

pytestmark = pytest.mark.e2e

Log = list[tuple[str, str, str, bool]]
WATCH = "/api/v1/watch/events"
PER_SUBJECT = 4  # CJ_WATCH_MAX_PER_SUBJECT's default


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data: Path = tmp_path_factory.mktemp("watch-cap")
    with running_stack(data, {"CJ_LOG_FORMAT": "json", "CJ_WATCH_MAX_WATCHERS": "8"}) as s:
        yield s


def _first_message(lines: Iterator[str]) -> dict[str, Any]:
    for line in lines:
        if line.startswith("data:"):
            msg: dict[str, Any] = json.loads(line[5:])
            return msg
    raise AssertionError("the stream ended without a message")


def test_one_token_holds_at_most_its_share_of_the_streams(
    own_stack: Stack, attack_log: Log
) -> None:
    hog = {"Authorization": f"Bearer {token(own_stack, 'read', subject='hog')}"}
    other = {"Authorization": f"Bearer {token(own_stack, 'read', subject='someone-else')}"}
    with (
        httpx.Client(base_url=own_stack.edge_url, timeout=30) as http,
        contextlib.ExitStack() as held,
    ):
        ended: list[str] = []
        opened: list[httpx.Response] = []

        def drain(lines: Iterator[str], n: int) -> None:
            # Held streams are read as they come: one left unread can be cut off as a slow
            # client, which frees its slot (the watcher-bound test met that in a full run).
            try:
                last = ""
                for line in lines:  # the same iterator: a stream's body is read once
                    last = line or last
                ended.append(f"stream {n} ended by the server after {last[:160]!r}")
            except (httpx.HTTPError, RuntimeError) as e:
                ended.append(f"stream {n} broke: {type(e).__name__} {e}")  # or closed at the end

        def hold(headers: dict[str, str]) -> httpx.Response:
            response = held.enter_context(http.stream("GET", WATCH, headers=headers))
            if response.status_code == 200:
                lines = response.iter_lines()
                assert "heartbeat" in _first_message(lines)  # the slot is taken
                opened.append(response)
                threading.Thread(target=drain, args=(lines, len(opened)), daemon=True).start()
            else:
                response.read()
            return response

        for _ in range(PER_SUBJECT):
            assert hold(hog).status_code == 200
        rows = [
            (f"SSE stream {PER_SUBJECT + 1} of one token", hold(hog)),
            # The edge sets x-cj-subject from the verified token: a client's own is not used.
            (
                f"SSE stream {PER_SUBJECT + 1} of one token, x-cj-subject forged",
                hold({**hog, "x-cj-subject": "fresh-bucket"}),
            ),
        ]
        for attack, r in rows:
            text = "(a stream)" if r.status_code == 200 else r.text
            got = f"{r.status_code} {text[:120]}"
            passed = r.status_code == 429 and "CJ_WATCH_MAX_PER_SUBJECT=4" in text
            attack_log.append((attack, "429 naming CJ_WATCH_MAX_PER_SUBJECT", got, passed))
        assert all(row[3] for row in attack_log[-2:]), (attack_log[-2:], ended)
        # Another token still gets a slot (the platform has 8).
        assert hold(other).status_code == 200
