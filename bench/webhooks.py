"""The webhook side of the benchmarks: a fast local receiver and the rules that feed it.

Shared by `make bench-actions` (one rule, delivery throughput and latency) and `make bench`
(issue 20: ten enabled rules matching 10 % of the load's events, so the orchestrator does
its share of the work in every scenario).
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from bench.loadgen import MATCH_FIELD
from services.cli.processes import free_port

# The load's events carry payload.m = n % MATCH_MODULUS; rule i matches m == i, so RULES
# rules match RULES / MATCH_MODULUS of the events, each event at most one rule.
RULES = 10


class FastReceiver:
    """Answers 204 at once; records (arrival wall time, ingested_at) per webhook."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrivals: list[tuple[float, float]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                now = time.time()
                ingested = datetime.fromisoformat(json.loads(body)["event"]["ingested_at"])
                with outer._lock:
                    outer.arrivals.append((now, ingested.timestamp()))
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def count(self) -> int:
        with self._lock:
            return len(self.arrivals)

    def since(self, n: int) -> list[tuple[float, float]]:
        with self._lock:
            return self.arrivals[n:]

    def stop(self) -> None:
        self._server.shutdown()


def wait_for(rx: FastReceiver, target: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if rx.count() >= target:
            return True
        time.sleep(0.05)
    return False


def create_rule(http: httpx.Client, name: str, pattern: str, url: str, condition: str = "") -> str:
    """One enabled rule through the edge's REST API; returns its id."""
    body: dict[str, object] = {"name": name, "event_type_pattern": pattern, "target": {"url": url}}
    if condition:
        body["condition"] = condition
    r = http.post("/api/v1/rules", json=body)
    r.raise_for_status()
    return str(r.json().get("ruleId", ""))


def matching_rules(http: httpx.Client, rx: FastReceiver, rules: int = RULES) -> list[str]:
    """``rules`` enabled rules on the load's event type, rule i matching payload.m == i (one
    target path each), so together they match rules / MATCH_MODULUS of the load's events."""
    return [
        create_rule(
            http,
            f"bench-match-{i}",
            "sensor.reading",
            rx.url(f"/hook/{i}"),
            condition=f"payload.{MATCH_FIELD} == {i}",
        )
        for i in range(rules)
    ]
