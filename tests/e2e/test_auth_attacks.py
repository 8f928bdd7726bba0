"""Attacks on the edge's authentication, each run against the live stack through Envoy.

Every case asserts the exact status, the platform's error body ({code, message, details})
and, for 401, the WWW-Authenticate challenge; the terminal summary prints the table.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import jwt
import pytest
from cornjacket.v1 import ingestion_pb2, ingestion_pb2_grpc, query_pb2, query_pb2_grpc
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf import struct_pb2

from services.cli.auth import ALGORITHM, edge_channel
from services.cli.stack import Stack
from tests.support import eventually, fetch_one, token, unique

pytestmark = pytest.mark.e2e

Log = list[tuple[str, str, str, bool]]
READ = "/api/v1/projections/sensor_state/auth-probe"
WRITE = "/api/v1/events"
ADMIN = "/api/v1/rules"
CHALLENGE = 'Bearer realm="cornjacket"'
INVALID = 'Bearer realm="cornjacket", error="invalid_token"'


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(stack: Stack, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": stack.settings.auth.issuer,
        "aud": stack.settings.auth.audience,
        "sub": "attacker",
        "scope": "events:write read admin",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    claims.update(over)
    return claims


def _foreign(claims: dict[str, Any], kid: str) -> str:
    """Signed by a key the stack has never seen."""
    key = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid})


def _without_sub(stack: Stack, sub: str | None = None) -> str:
    """Signed by the stack's own key, every scope, but no subject (or an empty one): whose
    calls would they be? (Principals and audit records need one.)"""
    claims = _claims(stack)
    del claims["sub"]
    if sub is not None:
        claims["sub"] = sub
    key = stack.keys.signing_keys()[-1]
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})


def _alg_none(stack: Stack) -> str:
    kid = stack.keys.signing_keys()[-1].kid
    return f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{_b64(_claims(stack))}."


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[Stack], str | None]  # the Authorization value, None for no header
    method: str
    path: str
    status: int
    query: str = ""


def _bearer(make: Callable[[Stack], str]) -> Callable[[Stack], str]:
    return lambda s: f"Bearer {make(s)}"


def _event() -> dict[str, Any]:
    return {
        "event_type": "sensor.reading",
        "aggregate_id": unique("auth"),
        "payload": {"value": 1.0, "unit": "C"},
    }


CASES = [
    Case("no token", lambda s: None, "GET", READ, 401),
    Case("not a JWT", lambda s: "Bearer not-a-jwt", "GET", READ, 401),
    Case(
        "expired",
        _bearer(lambda s: token(s, iat=int(time.time()) - 3600, exp=int(time.time()) - 600)),
        "GET",
        READ,
        401,
    ),
    Case(
        "not yet valid", _bearer(lambda s: token(s, nbf=int(time.time()) + 600)), "GET", READ, 401
    ),
    Case(
        "wrong signature (real kid)",
        _bearer(lambda s: _foreign(_claims(s), s.keys.signing_keys()[-1].kid)),
        "GET",
        READ,
        401,
    ),
    Case("unknown kid", _bearer(lambda s: _foreign(_claims(s), "nobody")), "GET", READ, 401),
    Case("wrong issuer", _bearer(lambda s: token(s, iss="https://evil.example")), "GET", READ, 401),
    Case("wrong audience", _bearer(lambda s: token(s, aud="someone-else")), "GET", READ, 401),
    Case("alg: none", _bearer(_alg_none), "GET", READ, 401),
    Case(
        "token in query string",
        lambda s: None,
        "GET",
        READ,
        401,
        query="access_token={admin}",
    ),
    Case("no sub claim", _bearer(_without_sub), "GET", READ, 401),
    Case("no sub claim -> ingest", _bearer(_without_sub), "POST", WRITE, 401),
    Case("empty sub claim", _bearer(lambda s: _without_sub(s, "")), "GET", ADMIN, 401),
    Case("read scope -> ingest", _bearer(lambda s: token(s, "read")), "POST", WRITE, 403),
    Case(
        "events:write scope -> read",
        _bearer(lambda s: token(s, "events:write")),
        "GET",
        READ,
        403,
    ),
    Case(
        "read + events:write -> admin",
        _bearer(lambda s: token(s, "read", "events:write")),
        "GET",
        ADMIN,
        403,
    ),
    Case(
        "events:writer lookalike -> ingest",
        _bearer(lambda s: token(s, scope="events:writer")),
        "POST",
        WRITE,
        403,
    ),
    Case(
        "admins lookalike -> admin", _bearer(lambda s: token(s, scope="admins")), "GET", ADMIN, 403
    ),
    Case("events:write -> ingest", _bearer(lambda s: token(s, "events:write")), "POST", WRITE, 202),
    Case("read -> read", _bearer(lambda s: token(s, "read")), "GET", READ, 404),
    Case("admin -> admin", _bearer(lambda s: token(s, "admin")), "GET", ADMIN, 200),
    Case(
        "old key after rotation",
        _bearer(
            lambda s: s.keys.sign(
                s.settings.auth,
                subject="old",
                scopes=["read"],
                ttl=600,
                key=s.keys.signing_keys()[0],
            )
        ),
        "GET",
        READ,
        404,
    ),
]


def _no_inside_headers(r: httpx.Response) -> list[str]:
    return [k for k in r.headers if k.startswith(("grpc-", "x-envoy-")) or k == "server"]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_http_attack(stack: Stack, attack_log: Log, case: Case) -> None:
    headers = {}
    auth = case.make(stack)
    if auth is not None:
        headers["Authorization"] = auth
    url = stack.edge_url + case.path
    if case.query:
        url += "?" + case.query.format(admin=stack.admin_token)
    body = _event() if case.method == "POST" else None
    got = "?"
    try:
        with httpx.Client(timeout=15) as client:
            r = client.request(case.method, url, headers=headers, json=body)
        answer = r.json()
        got = f"{r.status_code} code={answer.get('code', '-')}"
        assert r.status_code == case.status, r.text
        assert not _no_inside_headers(r), r.headers
        if case.status in (401, 403):
            assert set(answer) == {"code", "message", "details"}, answer
            assert answer["code"] == (16 if case.status == 401 else 7), answer
            assert answer["details"] == [] and answer["message"], answer
        if case.status == 401:
            expected = CHALLENGE if auth is None else INVALID
            assert r.headers["www-authenticate"] == expected
        else:
            assert "www-authenticate" not in r.headers
    finally:
        attack_log.append(
            (
                f"HTTP {case.method} {case.path}: {case.name}",
                str(case.status),
                got,
                got.startswith(str(case.status)) and got != "?",
            )
        )


def test_forged_identity_header_does_not_reach_the_service(stack: Stack, attack_log: Log) -> None:
    """A client's x-cj-subject is dropped; the service sees the verified token's subject."""
    got = "?"
    try:
        with httpx.Client(timeout=15) as client:
            r = client.post(
                stack.edge_url + WRITE,
                json=_event(),
                headers={
                    "Authorization": f"Bearer {token(stack, 'events:write', subject='alice')}",
                    "x-cj-subject": "mallory",
                },
            )
        assert r.status_code == 202, r.text
        eid = r.json()["event_id"]
        row = eventually(
            lambda: fetch_one(
                stack.postgres.url,
                "SELECT metadata FROM ingestion.event_store WHERE event_id = %s",
                (eid,),
            ),
            what="the event stored",
        )
        got = f"subject={row[0].get('subject')}"
        assert row[0]["subject"] == "alice", row
    finally:
        attack_log.append(
            (
                "HTTP x-cj-subject: mallory (token of alice)",
                "subject=alice",
                got,
                got == "subject=alice",
            )
        )


def _grpc_ingest(stack: Stack, tok: str) -> grpc.StatusCode:
    payload = struct_pb2.Value()
    payload.struct_value.update({"value": 1.0, "unit": "C"})
    req = ingestion_pb2.IngestEventRequest(
        event_type="sensor.reading", aggregate_id=unique("auth-grpc"), payload=payload
    )
    with edge_channel(f"127.0.0.1:{stack.settings.edge_port}", tok) as ch:
        try:
            ingestion_pb2_grpc.IngestionServiceStub(ch).IngestEvent(req, timeout=15)
        except grpc.RpcError as e:
            return e.code()
    return grpc.StatusCode.OK


def _grpc_read(stack: Stack, tok: str) -> grpc.StatusCode:
    req = query_pb2.GetProjectionRequest(projection_type="sensor_state", aggregate_id="auth-x")
    with edge_channel(f"127.0.0.1:{stack.settings.edge_port}", tok) as ch:
        try:
            query_pb2_grpc.QueryServiceStub(ch).GetProjection(req, timeout=15)
        except grpc.RpcError as e:
            return e.code()
    return grpc.StatusCode.OK


GRPC_CASES: list[
    tuple[str, Callable[[Stack], str], Callable[[Stack, str], grpc.StatusCode], str]
] = [
    ("IngestEvent without token", lambda s: "", _grpc_ingest, "UNAUTHENTICATED"),
    ("IngestEvent, garbage token", lambda s: "x.y.z", _grpc_ingest, "UNAUTHENTICATED"),
    (
        "IngestEvent, expired token",
        lambda s: token(s, iat=int(time.time()) - 3600, exp=int(time.time()) - 600),
        _grpc_ingest,
        "UNAUTHENTICATED",
    ),
    (
        "IngestEvent, wrong audience",
        lambda s: token(s, aud="someone-else"),
        _grpc_ingest,
        "UNAUTHENTICATED",
    ),
    ("IngestEvent, no sub claim", _without_sub, _grpc_ingest, "UNAUTHENTICATED"),
    ("IngestEvent, read scope", lambda s: token(s, "read"), _grpc_ingest, "PERMISSION_DENIED"),
    ("IngestEvent, events:write", lambda s: token(s, "events:write"), _grpc_ingest, "OK"),
    (
        "GetProjection, events:write",
        lambda s: token(s, "events:write"),
        _grpc_read,
        "PERMISSION_DENIED",
    ),
    ("GetProjection, read", lambda s: token(s, "read"), _grpc_read, "NOT_FOUND"),
]


@pytest.mark.parametrize("case", GRPC_CASES, ids=[c[0] for c in GRPC_CASES])
def test_grpc_attack(
    stack: Stack,
    attack_log: Log,
    case: tuple[str, Callable[[Stack], str], Callable[[Stack, str], grpc.StatusCode], str],
) -> None:
    name, make, call, expected = case
    got = "?"
    try:
        got = call(stack, make(stack)).name
        assert got == expected
    finally:
        attack_log.append((f"gRPC {name}", expected, got, got == expected))
