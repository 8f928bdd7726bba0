"""A real local HTTP server standing in for webhook endpoints (the only test double).

Each path can be scripted: a queue of responses (status, delay, headers) consumed one per
request, then a default. Every request is recorded with its arrival time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from services.cli.processes import free_port


@dataclass(frozen=True)
class Reply:
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self._lock = threading.Lock()
        self._scripts: dict[str, list[Reply]] = {}
        self._defaults: dict[str, Reply] = {}
        self.requests: list[Received] = []
        self.in_flight = 0
        self.truncated = 0  # requests whose body was cut short (not recorded as received)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:
                    # The sender went away mid-body (e.g. it was killed): that is not a
                    # delivery, so it is not recorded; the sender never saw an answer and
                    # will send the whole request again.
                    with receiver._lock:
                        receiver.truncated += 1
                    self.close_connection = True
                    return
                path = self.path
                reply = receiver._take(path)
                with receiver._lock:
                    receiver.requests.append(
                        Received(
                            path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            time.monotonic(),
                        )
                    )
                    receiver.in_flight += 1
                try:
                    if reply.delay:
                        time.sleep(reply.delay)
                    payload = b'{"ok":true}'
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (timeout) or was killed
                finally:
                    with receiver._lock:
                        receiver.in_flight -= 1

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _take(self, path: str) -> Reply:
        with self._lock:
            queue = self._scripts.get(path)
            if queue:
                return queue.pop(0)
            return self._defaults.get(path, Reply())

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *replies: Reply, default: Reply | None = None) -> None:
        with self._lock:
            self._scripts[path] = list(replies)
            if default is not None:
                self._defaults[path] = default

    def received(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    try:
        yield r
    finally:
        r.stop()
