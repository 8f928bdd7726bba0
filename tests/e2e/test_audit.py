"""The audit log through Envoy: admin calls with a known subject, listed by GET /api/v1/audit
in time order across owners and pages; scopes and a forged identity header are attacks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import httpx
import psycopg
import pytest
import uuid_utils
from cornjacket.v1 import actions_pb2, actions_pb2_grpc

from services.cli.auth import edge_channel
from services.cli.stack import Stack
from services.core.events import Event
from services.infra.codec import encode_event
from tests.support import token, unique

pytestmark = pytest.mark.e2e

Log = list[tuple[str, str, str, bool]]
FORGED = {"x-cj-subject": "mallory"}


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def client(stack: Stack, tok: str) -> httpx.Client:
    return httpx.Client(
        base_url=stack.edge_url,
        timeout=15,
        headers={"Authorization": f"Bearer {tok}", **FORGED},
    )


def pending_letter(stack: Stack) -> str:
    now = datetime.now(UTC)
    event = Event(
        str(uuid_utils.uuid7()), "sensor.reading", unique("audit"), now, now, {"value": 3.0}
    )
    with psycopg.connect(stack.postgres.url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO eventhandler.dlq (consumer, event_id, event_payload, error_message) "
            "VALUES ('event-handler', %s, %s, 'audit test') RETURNING dlq_id::text",
            (event.event_id, encode_event(event)),
        ).fetchone()
    assert row is not None
    return str(row[0])


def all_pages(http: httpx.Client, **params: Any) -> tuple[list[dict[str, Any]], int]:
    records: list[dict[str, Any]] = []
    pages = 0
    token_ = ""
    while True:
        r = http.get("/api/v1/audit", params={**params, "page_token": token_})
        assert r.status_code == 200, r.text
        body = r.json()
        records += body.get("records", [])
        pages += 1
        token_ = body.get("next_page_token", "")
        if not token_:
            return records, pages


def test_admin_calls_are_listed_with_subject_request_id_change_and_outcome(
    stack: Stack, attack_log: Log
) -> None:
    subject = unique("auditor")
    admin = client(stack, token(stack, "admin", subject=subject))
    start = datetime.now(UTC) - timedelta(seconds=1)
    calls: list[tuple[str, str, str]] = []  # (action, request id, outcome)

    def call(method: str, path: str, action: str, **kw: Any) -> httpx.Response:
        r = admin.request(method, path, **kw)
        outcome = "OK" if r.status_code == 200 else {404: "NOT_FOUND"}[r.status_code]
        calls.append((action, r.headers["x-request-id"], outcome))
        return r

    svc = "/cornjacket.v1.ActionService/"
    created = call(
        "POST",
        "/api/v1/rules",
        svc + "CreateRule",
        json={
            "name": "audited",
            "event_type_pattern": unique("audit.type"),
            "target": {"url": "https://hooks.example.com/in", "headers": {"Authorization": "s3"}},
        },
    )
    assert created.status_code == 200, created.text
    rule_id = created.json()["rule_id"]
    call("PATCH", f"/api/v1/rules/{rule_id}", svc + "UpdateRule", json={"name": "audited-2"})
    call("POST", f"/api/v1/rules/{rule_id}:disable", svc + "DisableRule", json={"reason": "x"})
    call("DELETE", f"/api/v1/rules/{rule_id}", svc + "DeleteRule")
    call("DELETE", f"/api/v1/rules/{rule_id}", svc + "DeleteRule")  # gone: NOT_FOUND
    middle = datetime.now(UTC)
    letter = pending_letter(stack)
    replayed = call(
        "POST",
        "/api/v1/dlq:replay",
        "/cornjacket.v1.DeadLetterService/ReplayDeadLetters",
        json={"dlq_ids": [letter]},
    )
    assert replayed.json()["replayed"] == 1, replayed.text
    end = datetime.now(UTC) + timedelta(seconds=1)

    everything, pages = all_pages(admin, **{"from": iso(start), "to": iso(end), "page_size": 2})
    mine = [r for r in everything if r["subject"] == subject]
    assert [(r["action"], r["request_id"], r["outcome"]) for r in mine] == calls
    assert pages >= 3 and {r["owner"] for r in mine} == {"actions", "eventhandler"}
    ats = [r["at"] for r in everything]
    assert ats == sorted(ats)  # RFC 3339 in UTC: text order is time order
    assert len({r["audit_id"] for r in everything}) == len(everything)  # no page repeats one
    assert mine[0]["target"] == rule_id
    assert mine[0]["change"]["after"]["target"]["headers"] == {"Authorization": "…"}
    assert mine[1]["change"]["before"]["name"] == "audited"
    assert mine[1]["change"]["after"]["name"] == "audited-2"
    assert mine[4]["error"] and mine[5]["change"]["dlq_ids"] == [letter]

    later, _ = all_pages(admin, **{"from": iso(middle), "to": iso(end)})
    assert [r["request_id"] for r in later if r["subject"] == subject] == [calls[-1][1]]
    earlier, _ = all_pages(admin, **{"from": iso(start), "to": iso(middle)})
    assert [r["request_id"] for r in earlier if r["subject"] == subject] == [
        c[1] for c in calls[:-1]
    ]

    forged = [r["subject"] for r in mine]
    ok = forged == [subject] * len(calls)
    attack_log.append(
        (
            "forged x-cj-subject header on admin calls (HTTP)",
            f"recorded subject {subject}",
            f"recorded {sorted(set(forged))}",
            ok,
        )
    )
    assert ok


def test_a_refused_target_url_leaves_no_password_in_the_audit_log(
    stack: Stack, attack_log: Log
) -> None:
    subject = unique("auditor")
    admin = client(stack, token(stack, "admin", subject=subject))
    start = datetime.now(UTC) - timedelta(seconds=1)
    url = "https://svc:SuperSecretPw@hooks.example.com:99999/x"
    r = admin.post(
        "/api/v1/rules",
        json={"name": "leaky", "event_type_pattern": "a.b", "target": {"url": url}},
    )
    assert r.status_code == 400, r.text
    end = datetime.now(UTC) + timedelta(seconds=1)
    everything, _ = all_pages(admin, **{"from": iso(start), "to": iso(end)})
    mine = [x for x in everything if x["subject"] == subject]
    assert [x["outcome"] for x in mine] == ["INVALID_ARGUMENT"]
    ok = "SuperSecretPw" not in mine[0]["error"] and "SuperSecretPw" not in r.text
    attack_log.append(
        (
            "webhook URL with a password refused (bad port): the error in the answer and audit",
            "password masked",
            "masked" if ok else f"leaked: {mine[0]['error'][:80]}",
            ok,
        )
    )
    assert ok


def test_forged_subject_over_native_grpc_is_not_recorded(stack: Stack, attack_log: Log) -> None:
    subject = unique("grpc-auditor")
    start = datetime.now(UTC) - timedelta(seconds=1)
    channel = edge_channel(
        f"127.0.0.1:{stack.settings.edge_port}", token(stack, "admin", subject=subject)
    )
    try:
        stub = actions_pb2_grpc.ActionServiceStub(channel)
        missing = str(uuid_utils.uuid7())
        with pytest.raises(grpc.RpcError) as gone:
            stub.DeleteRule(
                actions_pb2.DeleteRuleRequest(rule_id=missing),
                metadata=tuple(FORGED.items()),
                timeout=10,
            )
    finally:
        channel.close()
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    admin = client(stack, token(stack, "admin", subject="reader-of-audit"))
    records, _ = all_pages(admin, **{"from": iso(start)})
    got = [r["subject"] for r in records if r["target"] == missing]
    ok = got == [subject]
    attack_log.append(
        (
            "forged x-cj-subject metadata on an admin call (gRPC)",
            f"recorded subject {subject}",
            f"recorded {got}",
            ok,
        )
    )
    assert ok


def test_the_audit_log_needs_admin_and_rejects_bad_queries(stack: Stack, attack_log: Log) -> None:
    reader = client(stack, token(stack, "read", "events:write", subject="reader"))
    r = reader.get("/api/v1/audit")
    attack_log.append(
        ("read-only token lists the audit log", "403", str(r.status_code), r.status_code == 403)
    )
    assert r.status_code == 403
    admin = client(stack, token(stack, "admin"))
    r = admin.get("/api/v1/audit", params={"from": "yesterday"})
    assert r.status_code == 400 and "RFC 3339" in r.json()["message"]
    r = admin.get("/api/v1/audit", params={"page_token": "bogus!"})
    assert r.status_code == 400 and "page_token" in r.json()["message"]
    r = admin.get("/api/v1/audit", params={"page_size": 1000})
    assert r.status_code == 400 and "page_size" in r.json()["message"]
