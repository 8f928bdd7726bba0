"""The test webhook receiver records only whole requests (issue 12's flake).

A sender killed mid-body (the fault suite SIGKILLs the orchestrator while it sends) leaves a
request whose body is shorter than its Content-Length. That is not a delivery: the sender
never saw an answer and sends the job again, so the receiver must not record it, or the
fault test would parse half a JSON body (the flake) or count a delivery that never was.
"""

from __future__ import annotations

import socket

import httpx

from tests.support import eventually
from tests.webhook_receiver import receiver


def test_a_request_cut_short_is_not_recorded_and_a_whole_one_is() -> None:
    with receiver() as hooks:
        body = b'{"event": {"event_id": "e1"}}'
        with socket.create_connection(("127.0.0.1", hooks.port)) as sock:
            sock.sendall(
                b"POST /hook HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(body)}\r\n\r\n".encode()
                + body[:10]
            )
            sock.shutdown(socket.SHUT_WR)  # the sender dies mid-body
            assert sock.recv(1024) == b""  # no answer for a request that never arrived whole
        eventually(lambda: hooks.truncated == 1, timeout=5, what="the cut request seen")
        assert hooks.received("/hook") == []

        r = httpx.post(hooks.url("/hook"), content=body, timeout=5)
        assert r.status_code == 200
        got = hooks.received("/hook")
        assert [g.body for g in got] == [body]
