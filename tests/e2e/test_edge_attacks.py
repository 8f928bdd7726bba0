"""Attacks on the edge's protections (rate budgets, host names, forwarded and Envoy headers,
trace ids, body size, internal errors), each run through a real Envoy in front of the live
stack; rows go to the attack table printed at the end of the run.

The rate-limit attacks use Envoys of their own (low budgets, same upstreams and keys as the
session stack), so the other e2e tests keep the generous defaults.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from cornjacket.v1 import query_pb2, query_pb2_grpc

from services.cli.auth import edge_channel
from services.cli.embedded import EmbeddedEnvoy
from services.cli.envoy_config import render
from services.cli.processes import free_port
from services.cli.stack import Stack
from services.config.settings import AuthSettings, EdgeSettings, Env, RateBudget
from tests.support import bearer, eventually, token, unique

pytestmark = pytest.mark.e2e

Log = list[tuple[str, str, str, bool]]
READ = "/api/v1/projections/sensor_state/edge-probe"
BODY_KEYS = {"code", "message", "details"}
TIGHT = RateBudget(rate=1, burst=2)


def _reading(agg: str) -> dict[str, object]:
    return {
        "event_type": "sensor.reading",
        "aggregate_id": agg,
        "payload": {"value": 1, "unit": "C"},
    }


def _shape(r: httpx.Response) -> bool:
    try:
        return set(r.json()) == BODY_KEYS
    except ValueError:
        return False


def _record(log: Log, attack: str, expected: str, got: str, ok: bool) -> None:
    log.append((attack, expected, got, ok))
    assert ok, f"{attack}: expected {expected}, got {got}"


def _edge(stack: Stack, folder: Path, *, insecure: bool) -> Iterator[str]:
    """An Envoy of its own in front of the stack's services, with tight rate budgets."""
    s = stack.settings
    folder.mkdir(parents=True, exist_ok=True)
    port, admin = free_port(), free_port()
    auth = AuthSettings.from_env(Env({"CJ_AUTH_INSECURE": "true"})) if insecure else s.auth
    config = folder / "envoy.yaml"
    config.write_text(
        render(
            auth=auth,
            jwks_file=stack.keys.jwks_path,
            edge=EdgeSettings(ingest=TIGHT, read=TIGHT, admin=TIGHT),
            edge_port=port,
            admin_port=admin,
            upstreams={
                "ingestion": ("127.0.0.1", s.ingestion_port),
                "query": ("127.0.0.1", s.query_port),
                "eventhandler": ("127.0.0.1", s.eventhandler_port),
                "actions": ("127.0.0.1", s.actions_port),
            },
        )
    )
    envoy = EmbeddedEnvoy(config, folder / "envoy.log")
    envoy.start()
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(url + "/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        eventually(healthy, timeout=30, what="the tight edge's /health")
        yield url
    finally:
        envoy.stop()


@pytest.fixture(scope="module")
def tight(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _edge(stack, tmp_path_factory.mktemp("tight-edge"), insecure=False)


@pytest.fixture(scope="module")
def tight_open(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _edge(stack, tmp_path_factory.mktemp("tight-open-edge"), insecure=True)


def _until_limited(send: Callable[[], httpx.Response], attempts: int = 60) -> httpx.Response:
    """Sends until the budget (2 at once, 1 a second) is spent; 60 calls always spend it."""
    for _ in range(attempts):
        r = send()
        if r.status_code == 429:
            return r
    raise AssertionError(f"no 429 after {attempts} calls; last {r.status_code} {r.text}")


def _auth(stack: Stack, subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(stack, subject=subject)}"}


# --- rate budgets -----------------------------------------------------------------------


def test_over_its_read_budget_a_client_gets_429_with_retry_after(
    stack: Stack, tight: str, attack_log: Log
) -> None:
    with httpx.Client(base_url=tight, timeout=15, headers=_auth(stack, "flood-read")) as c:
        r = _until_limited(lambda: c.get(READ))
    ok = r.headers.get("retry-after") == "1" and _shape(r) and r.json()["code"] == 8
    _record(
        attack_log,
        "HTTP reads over the client's budget",
        "429 + Retry-After + {code:8,...}",
        f"{r.status_code} retry-after={r.headers.get('retry-after')} {r.text[:60]}",
        ok,
    )


def test_over_its_ingest_budget_while_another_client_is_served(
    stack: Stack, tight: str, attack_log: Log
) -> None:
    flood = _auth(stack, unique("flood-ingest"))
    other = _auth(stack, unique("quiet-ingest"))
    with httpx.Client(base_url=tight, timeout=15) as c:
        agg = unique("flood")
        r = _until_limited(lambda: c.post("/api/v1/events", json=_reading(agg), headers=flood))
        served = c.post("/api/v1/events", json=_reading(unique("quiet")), headers=other)
    _record(
        attack_log,
        "one client floods ingest, another ingests",
        "flooder 429, other 202",
        f"flooder {r.status_code}, other {served.status_code}",
        r.status_code == 429 and served.status_code == 202 and _shape(r),
    )


def test_budgets_are_separate_for_ingest_reads_and_admin(stack: Stack, tight: str) -> None:
    headers = _auth(stack, unique("budgets"))
    with httpx.Client(base_url=tight, timeout=15, headers=headers) as c:
        _until_limited(lambda: c.get(READ))
        assert c.get("/api/v1/rules").status_code == 200
        assert c.post("/api/v1/events", json=_reading(unique("b"))).status_code == 202


def test_over_its_budget_a_grpc_client_gets_resource_exhausted(
    stack: Stack, tight: str, attack_log: Log
) -> None:
    ch = edge_channel(tight.removeprefix("http://"), token(stack, subject=unique("flood-grpc")))
    stub = query_pb2_grpc.QueryServiceStub(ch)
    req = query_pb2.GetProjectionRequest(projection_type="sensor_state", aggregate_id="x")
    code = grpc.StatusCode.OK
    try:
        for _ in range(60):
            try:
                stub.GetProjection(req, timeout=15)
            except grpc.RpcError as e:
                code = e.code()
                if code != grpc.StatusCode.NOT_FOUND:
                    break
    finally:
        ch.close()
    _record(
        attack_log,
        "gRPC reads over the client's budget",
        "RESOURCE_EXHAUSTED",
        code.name,
        code == grpc.StatusCode.RESOURCE_EXHAUSTED,
    )


def test_x_forwarded_for_does_not_buy_a_fresh_budget(tight_open: str, attack_log: Log) -> None:
    # Without authentication the budget is per client address: a client writing another
    # address into X-Forwarded-For is still the TCP peer it is.
    with httpx.Client(base_url=tight_open, timeout=15) as c:
        _until_limited(lambda: c.get(READ))
        r = c.get(READ, headers={"X-Forwarded-For": "203.0.113.7"})
    _record(
        attack_log,
        "X-Forwarded-For spoof after the address's budget is spent",
        "429 (same client)",
        str(r.status_code),
        r.status_code == 429,
    )


# --- hardening on the session stack's edge -----------------------------------------------


def test_x_forwarded_for_cannot_pass_as_internal(stack: Stack, attack_log: Log) -> None:
    # An internal request would keep a client's x-request-id (it becomes a stored trace id).
    headers = {**bearer(stack), "X-Forwarded-For": "10.0.0.1", "x-request-id": "spoofed-id"}
    r = httpx.get(stack.edge_url + READ, headers=headers, timeout=15)
    got = r.headers.get("x-request-id", "")
    _record(
        attack_log,
        "X-Forwarded-For: 10.0.0.1 + x-request-id",
        "treated as external: fresh request id",
        f"{r.status_code} x-request-id={got}",
        r.status_code == 404 and got not in ("", "spoofed-id"),
    )


def test_client_x_envoy_headers_are_ignored(stack: Stack, attack_log: Log) -> None:
    # Honoured, a 1 ms upstream timeout would turn every call into 504.
    headers = {
        **bearer(stack),
        "x-envoy-upstream-rq-timeout-ms": "1",
        "x-envoy-upstream-rq-per-try-timeout-ms": "1",
        "x-envoy-max-retries": "5",
    }
    r = httpx.get(stack.edge_url + READ, headers=headers, timeout=15)
    _record(
        attack_log,
        "x-envoy-upstream-rq-timeout-ms: 1 from the client",
        "ignored (404 as without it)",
        str(r.status_code),
        r.status_code == 404,
    )


def test_header_names_with_underscores_are_refused(stack: Stack, attack_log: Log) -> None:
    headers = {**bearer(stack), "x_cj_subject": "admin"}
    r = httpx.get(stack.edge_url + READ, headers=headers, timeout=15)
    _record(
        attack_log,
        "header x_cj_subject (underscore)",
        "400 + {code,message,details}",
        f"{r.status_code} {r.text.strip()[:60]}",
        r.status_code == 400 and _shape(r),
    )


@pytest.mark.parametrize("with_token", [False, True], ids=["no-token", "token"])
def test_a_foreign_host_name_is_refused(stack: Stack, attack_log: Log, with_token: bool) -> None:
    headers = {"Host": "evil.example", **(bearer(stack) if with_token else {})}
    r = httpx.get(stack.edge_url + READ, headers=headers, timeout=15)
    _record(
        attack_log,
        f"Host: evil.example (DNS rebinding), {'with' if with_token else 'no'} token",
        "421 + {code,message,details}",
        f"{r.status_code} {r.text.strip()[:60]}",
        r.status_code == 421 and _shape(r) and "CJ_EDGE_HOSTS" in r.json()["message"],
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_local_host_names_are_answered_with_and_without_the_port(stack: Stack, host: str) -> None:
    port = stack.settings.edge_port
    for value in (host, f"{host}:{port}"):
        r = httpx.get(stack.edge_url + READ, headers={**bearer(stack), "Host": value}, timeout=15)
        assert r.status_code == 404 and r.json()["code"] == 5, (value, r.text)


def test_health_answers_any_host_name(stack: Stack) -> None:
    # Load balancers probe the task's address; /health shows no data.
    r = httpx.get(stack.edge_url + "/health", headers={"Host": "10.0.0.5:8080"}, timeout=15)
    assert r.status_code == 200


def test_a_malformed_traceparent_does_not_become_the_trace_id(
    stack: Stack, attack_log: Log
) -> None:
    junk = "Z" * 30 + "<>"
    headers = {**bearer(stack), "traceparent": f"00-{junk}-{'1' * 16}-01"}
    with httpx.Client(base_url=stack.edge_url, timeout=15, headers=headers) as c:
        r = c.post("/api/v1/events", json=_reading(unique("tp")))
        assert r.status_code == 202, r.text
        lineage = c.get(f"/api/v1/events/{r.json()['event_id']}/lineage").json()
    trace_id = lineage["event"]["metadata"]["trace_id"]
    _record(
        attack_log,
        "traceparent with a non-hex trace id",
        "dropped: a trace id of the platform's own",
        trace_id,
        re.fullmatch(r"[0-9a-f]{32}|[0-9a-f-]{36}", trace_id) is not None,
    )


def test_an_oversized_body_is_413(stack: Stack, attack_log: Log) -> None:
    body = json.dumps(_reading(unique("big")) | {"payload": {"blob": "x" * 2_000_000}})
    r = httpx.post(
        stack.edge_url + "/api/v1/events",
        content=body,
        headers={**bearer(stack), "content-type": "application/json"},
        timeout=15,
    )
    _record(
        attack_log,
        "2 MB request body",
        "413 + {code,message,details}",
        f"{r.status_code} {r.text.strip()[:60]}",
        r.status_code == 413 and _shape(r) and "larger than" in r.json()["message"],
    )
