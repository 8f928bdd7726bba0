"""Review of the edge's read path (56f92ba: HTTP reads skip the Lua filter): attacks on what
the Lua filter used to do for every request and what now does it natively. Rows go to the
attack table."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator

import httpx
import pytest
from cornjacket.v1 import ingestion_pb2

from services.cli.embedded import EmbeddedEnvoy
from services.cli.envoy_config import render
from services.cli.processes import free_port
from services.cli.stack import Stack
from services.config.settings import EdgeSettings, RateBudget
from tests.e2e.test_edge_read_path import _inside, _lua_runs
from tests.support import eventually, fetch_one, token, unique

pytestmark = pytest.mark.e2e

Log = list[tuple[str, str, str, bool]]
N = 10
READ = "/api/v1/rules"


def _row(log: Log, attack: str, expected: str, got: str) -> None:
    log.append((attack, expected, got, got == expected))


def _grpc_get(http: httpx.Client, agg: str, **headers: str) -> httpx.Response:
    """IngestEvent as a native gRPC call (framed Protobuf, content-type application/grpc),
    but with the method GET: the edge's read path must not take it for an HTTP read."""
    msg = ingestion_pb2.IngestEventRequest(event_type="sensor.reading", aggregate_id=agg)
    msg.payload.struct_value.update({"value": 1})
    raw = msg.SerializeToString()
    return http.request(
        "GET",
        "/cornjacket.v1.IngestionService/IngestEvent",
        content=struct.pack(">BI", 0, len(raw)) + raw,
        headers={"content-type": "application/grpc", "te": "trailers", **headers},
    )


@pytest.mark.parametrize("traced", [False, True], ids=["plain", "traceparent"])
def test_a_grpc_call_sent_as_get_keeps_its_grpc_status(
    http: httpx.Client, attack_log: Log, traced: bool
) -> None:
    """A GET with content-type application/grpc is a gRPC call (the transcoder leaves it
    alone, the route sends it to the service natively): its answer's grpc-status and
    grpc-message are its outcome, which the read path's header stripping must keep (it
    answered a bare 200 with neither: no status, no error, nothing a client can act on)."""
    r = _grpc_get(http, unique("get-grpc"), **({"traceparent": "00-not-hex-01"} if traced else {}))
    status = r.headers.get("grpc-status", "none")
    # The service's refusal of the method (a gRPC call is a POST), not a success.
    refused = status not in ("none", "0")
    _row(
        attack_log,
        "native gRPC IngestEvent sent as GET" + (" with a traceparent" if traced else ""),
        "a grpc-status, not OK",
        "a grpc-status, not OK" if refused else f"{r.status_code} grpc-status={status}",
    )
    assert refused, (r.status_code, r.headers)


def test_reads_with_any_traceparent_go_through_the_check(
    stack: Stack, http: httpx.Client, attack_log: Log
) -> None:
    """The skip matcher tests the traceparent's presence with a regex (.*): a value that is
    no UTF-8 (a byte 0xff) or an empty one still counts as present, so the Lua filter checks
    it (and drops it)."""
    for name, value in (("non-UTF-8", b"00-\xff" + b"0" * 50), ("empty", b"")):
        before = _lua_runs(stack)
        answers = [http.get(READ, headers=[(b"traceparent", value)]) for _ in range(N)]
        ran = _lua_runs(stack) - before
        ok = all(a.status_code == 200 for a in answers) and ran >= N
        _row(
            attack_log,
            f"{N} reads with a {name} traceparent: checked by the Lua filter",
            "200, Lua ran",
            "200, Lua ran" if ok else f"{[a.status_code for a in answers]}, Lua ran {ran}",
        )
        assert ok, (ran, answers[0].text)


def test_edge_replies_to_reads_keep_the_json_shape(
    stack: Stack, http: httpx.Client, attack_log: Log
) -> None:
    """Envoy's own answers (and a service's error) to reads that skip the Lua filter: the
    platform's {code, message, details} body, no grpc-*/x-envoy-* header."""
    read_only = {"Authorization": f"Bearer {token(stack, 'read')}"}
    cases = (
        ("no route", http.get("/nope"), 404, 5),
        (
            "service's not found",
            http.get(f"/api/v1/projections/sensor_state/{unique('n')}"),
            404,
            5,
        ),
        ("foreign Host", http.get(READ, headers={"host": "evil.example"}), 421, 3),
        ("bad token", http.get(READ, headers={"authorization": "Bearer x.y.z"}), 401, 16),
        ("no token", httpx.get(stack.edge_url + READ, timeout=10), 401, 16),
        ("missing scope", httpx.get(stack.edge_url + READ, headers=read_only, timeout=10), 403, 7),
        ("unknown query parameter", http.get(READ + "?bogus=1"), 400, 3),
    )
    for what, r, status, code in cases:
        body = r.json()
        got = f"{r.status_code} code={body.get('code')}" + (
            f" leaked {_inside(r)}" if _inside(r) else ""
        )
        _row(attack_log, f"read, {what}: edge/service error shape", f"{status} code={code}", got)
        assert got == f"{status} code={code}", (r.headers, r.text)
        assert set(body) == {"code", "message", "details"}, body


def test_health_is_open_and_clean(stack: Stack, attack_log: Log) -> None:
    r = httpx.get(stack.edge_url + "/health", timeout=10)
    got = f"{r.status_code} {r.json().get('status')}" + (" leaked" if _inside(r) else "")
    _row(attack_log, "GET /health without a token", "200 healthy", got)
    assert got == "200 healthy", (r.headers, r.text)


def test_a_get_cannot_be_turned_into_a_write(http: httpx.Client, attack_log: Log) -> None:
    """Method override headers mean nothing at the edge: a GET to the ingest path with a body
    is no ingest."""
    r = http.request(
        "GET",
        "/api/v1/events",
        content=b'{"event_type":"sensor.reading","aggregate_id":"x","payload":{"v":1}}',
        headers={
            "content-type": "application/json",
            "x-http-method-override": "POST",
            "x-http-method": "POST",
            "x-method-override": "POST",
        },
    )
    got = f"{r.status_code} code={r.json().get('code')}"
    _row(attack_log, "GET /api/v1/events + body + x-http-method-override: POST", "404 code=5", got)
    assert got == "404 code=5", r.text


@pytest.fixture(scope="module")
def narrow(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An Envoy of its own in front of the session stack's services: a read budget of 2 at
    once, and the time series service on a port nothing listens on (its reads: 503)."""
    s, folder = stack.settings, tmp_path_factory.mktemp("review-edge")
    port, admin = free_port(), free_port()
    config = folder / "envoy.yaml"
    config.write_text(
        render(
            auth=s.auth,
            jwks_file=stack.keys.jwks_path,
            edge=EdgeSettings(read=RateBudget(rate=1, burst=2)),
            edge_port=port,
            admin_port=admin,
            upstreams={
                "query": ("127.0.0.1", s.query_port),
                "tsdb": ("127.0.0.1", free_port()),
            },
        )
    )
    envoy = EmbeddedEnvoy(config, folder / "envoy.log")
    envoy.start()
    url = f"http://127.0.0.1:{port}"
    probe = {"Authorization": f"Bearer {token(stack, 'read', subject=unique('probe'))}"}

    def serving() -> bool:
        try:
            return httpx.get(url + "/api/v1/stats", headers=probe, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        eventually(serving, timeout=30, what="the review edge serving reads")
        yield url
    finally:
        envoy.stop()


def test_429_and_503_on_reads_keep_the_json_shape(
    stack: Stack, narrow: str, attack_log: Log
) -> None:
    """A read over its budget (local_ratelimit's 429) and a read of a service that is down
    (503, no healthy upstream): Envoy's own replies on the read path, without the Lua filter."""
    auth = {"Authorization": f"Bearer {token(stack, 'read', subject=unique('reader'))}"}
    with httpx.Client(base_url=narrow, timeout=15, headers=auth) as c:
        down = c.get("/api/v1/series")
        limited = next(
            (r for r in (c.get("/api/v1/stats") for _ in range(60)) if r.status_code == 429),
            None,
        )
    assert limited is not None, "no 429 after 60 reads at a budget of 2"
    for what, r, status, code in (
        ("over budget", limited, 429, 8),
        ("service down", down, 503, 14),
    ):
        body = r.json()
        got = f"{r.status_code} code={body.get('code')}" + (
            f" leaked {_inside(r)}" if _inside(r) else ""
        )
        _row(attack_log, f"read, {what}: edge error shape", f"{status} code={code}", got)
        assert got == f"{status} code={code}", (r.headers, r.text)
        assert set(body) == {"code", "message", "details"}, body


@pytest.mark.parametrize("ctype", ["application/grpc-web", "application/grpcx"])
def test_a_lookalike_grpc_content_type_is_an_http_call(
    stack: Stack, http: httpx.Client, attack_log: Log, ctype: str
) -> None:
    """Envoy takes a request for gRPC only when its content type is application/grpc or
    application/grpc+...; anything else that merely starts like it (application/grpc-web) is
    transcoded as HTTP/JSON, and its answer must be cleaned like any HTTP answer (a read's and
    an ingest's, which is 202 and stored with source http: the Lua filter's own test was the
    16-character prefix, so such an ingest answered 200 with grpc-* headers and was stored as
    source grpc)."""
    read = http.get(READ, headers={"content-type": ctype})
    body = {
        "event_type": "sensor.reading",
        "aggregate_id": unique("lookalike"),
        "payload": {"value": 1, "unit": "C"},
    }
    ingest = http.post("/api/v1/events", content=json.dumps(body), headers={"content-type": ctype})
    source = "-"
    if ingest.status_code in (200, 202):
        row = eventually(
            lambda: fetch_one(
                stack.postgres.url,
                "SELECT metadata->>'source' FROM ingestion.event_store WHERE event_id = %s",
                (ingest.json()["event_id"],),
            ),
            what="the event stored",
        )
        source = row[0]
    got = (
        f"read {read.status_code} {_inside(read)}, "
        f"ingest {ingest.status_code} {_inside(ingest)} source={source}"
    )
    want = "read 200 [], ingest 202 [] source=http"
    _row(attack_log, f"HTTP read and ingest with content-type {ctype}", want, got)
    assert got == want, (read.headers, ingest.headers, ingest.text)


def test_a_forged_subject_does_not_buy_a_fresh_read_budget(
    stack: Stack, narrow: str, attack_log: Log
) -> None:
    """The read budget is kept per x-cj-subject (jwt_authn sets it from the token): a client
    sending its own, fresh on every read, in another letter case and twice over, still spends
    its token's budget. (Two layers hold here: early_header_mutation drops the client's, and
    jwt_authn's claim_to_headers replaces any left: the row passes with either one alone.)"""
    auth = {"Authorization": f"Bearer {token(stack, 'read', subject=unique('forger'))}"}
    with httpx.Client(base_url=narrow, timeout=15, headers=auth) as c:
        statuses = []
        for _ in range(60):
            forged = unique("victim")
            headers = [("X-CJ-Subject", forged), ("x-cj-subject", forged), ("X-Cj-Scope", "admin")]
            statuses.append(c.get("/api/v1/stats", headers=headers).status_code)
            if statuses[-1] == 429:
                break
    got = "429" if 429 in statuses else f"no 429 in {len(statuses)} reads"
    _row(attack_log, "reads with a fresh forged X-CJ-Subject each (twice, mixed case)", "429", got)
    assert got == "429", statuses
