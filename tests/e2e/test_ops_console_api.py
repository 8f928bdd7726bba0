"""The console's operations API (issue 19) through Envoy with real tokens: testing a rule
against a sample event (ActionService.TestRule) and the overview's figures. Attacks go to
the session's attack table."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from services.cli.stack import Stack
from tests.support import bearer, eventually, fetch_one, token, unique
from tests.webhook_receiver import Reply, receiver

pytestmark = pytest.mark.e2e

Log = list[tuple[str, str, str, bool]]
TEST = "/api/v1/rules:test"
SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()


def sample(value: Any, event_type: str = "sensor.reading", source: str = "mqtt") -> dict[str, Any]:
    return {
        "event_type": event_type,
        "aggregate_id": "dev-7",
        "payload": {"value": value, "unit": "C"},
        "metadata": {"source": source},
    }


def test_an_inline_rule_is_tested_against_a_sample(http: httpx.Client) -> None:
    body = {
        "event_type_pattern": "sensor.*",
        "condition": 'payload.value > 80 and payload.unit == "C"',
    }
    hot = http.post(TEST, json={**body, "event": sample(85)})
    assert hot.status_code == 200, hot.text
    assert hot.json() == {
        "matched": True,
        "pattern_matched": True,
        "condition_matched": True,
        "event_type_pattern": "sensor.*",
        "condition": 'payload.value > 80 and payload.unit == "C"',
    }
    cold = http.post(TEST, json={**body, "event": sample(70)}).json()
    assert cold["matched"] is False and cold["pattern_matched"] is True
    # proto3 JSON leaves false out: the condition did not match.
    assert not cold.get("condition_matched", False)
    other = http.post(TEST, json={**body, "event": sample(85, event_type="user.login")}).json()
    assert not other.get("matched", False) and other["condition_matched"] is True
    by_source = http.post(
        TEST,
        json={
            "event_type_pattern": "*",
            "condition": 'metadata.source == "mqtt"',
            "event": sample(1),
        },
    ).json()
    assert by_source["matched"] is True


def test_an_existing_disabled_rule_is_tested_without_a_delivery(http: httpx.Client) -> None:
    with receiver() as hook:
        created = http.post(
            "/api/v1/rules",
            json={
                "name": unique("tested"),
                "event_type_pattern": "sensor.reading",
                "condition": "payload.value >= 100",
                "target": {"url": hook.url("/tested"), "secrets": [SECRET]},
                "enabled": False,
            },
        )
        assert created.status_code == 200, created.text
        rule_id = created.json()["rule_id"]
        try:
            hit = http.post(TEST, json={"rule_id": rule_id, "event": sample(100)})
            assert hit.status_code == 200, hit.text
            assert hit.json()["matched"] is True
            assert hit.json()["condition"] == "payload.value >= 100"
            miss = http.post(TEST, json={"rule_id": rule_id, "event": sample(99)}).json()
            assert not miss.get("matched", False)
            both = http.post(
                TEST, json={"rule_id": rule_id, "event_type_pattern": "*", "event": sample(1)}
            )
            assert both.status_code == 400 and "either rule_id" in both.json()["message"]
            deliveries = http.get("/api/v1/deliveries", params={"rule_id": rule_id}).json()
            assert deliveries.get("total", 0) == 0
        finally:
            http.delete(f"/api/v1/rules/{rule_id}")


def test_a_bad_condition_gets_the_same_positioned_error_as_create_rule(
    http: httpx.Client,
) -> None:
    bad = "payload.value > 80 and and payload.unit"
    tested = http.post(
        TEST, json={"event_type_pattern": "sensor.*", "condition": bad, "event": sample(1)}
    )
    created = http.post(
        "/api/v1/rules",
        json={
            "name": unique("bad"),
            "event_type_pattern": "sensor.*",
            "condition": bad,
            "target": {"url": "https://example.com/hook"},
        },
    )
    assert tested.status_code == created.status_code == 400, tested.text
    assert tested.json()["code"] == 3
    assert tested.json()["message"] == created.json()["message"]
    assert "at position 24" in tested.json()["message"]


def _attack(
    stack: Stack,
    attack_log: Log,
    name: str,
    headers: dict[str, str],
    body: dict[str, Any] | bytes,
    expected: int,
    needle: str = "",
) -> httpx.Response:
    with httpx.Client(base_url=stack.edge_url, timeout=30) as c:
        if isinstance(body, bytes):
            r = c.post(TEST, content=body, headers={**headers, "content-type": "application/json"})
        else:
            r = c.post(TEST, json=body, headers=headers)
    ok = r.status_code == expected and needle in r.text
    attack_log.append((f"rules:test: {name}", str(expected), f"{r.status_code} {r.text[:60]}", ok))
    assert ok, (r.status_code, r.text[:300])
    return r


def test_rule_test_attacks(stack: Stack, attack_log: Log) -> None:
    admin = {"Authorization": f"Bearer {token(stack, 'admin', subject=unique('ops'))}"}
    read = {"Authorization": f"Bearer {token(stack, 'read', subject=unique('ops'))}"}
    inline = {"event_type_pattern": "*", "condition": "payload.value > 1", "event": sample(2)}
    _attack(stack, attack_log, "no token", {}, inline, 401)
    _attack(stack, attack_log, "read-only token (admin needed)", read, inline, 403, '"code":7')
    _attack(
        stack,
        attack_log,
        "payload over the sample limit (100 KiB)",
        admin,
        {**inline, "event": {**sample(2), "payload": {"blob": "x" * 100_000}}},
        400,
        "a sample may hold at most 65536",
    )
    big = (
        b'{"event_type_pattern":"*","event":{"event_type":"a.b","payload":{"blob":"'
        + b"x" * (1024 * 1024 + 10)
        + b'"}}}'
    )
    _attack(stack, attack_log, "body over the edge's 1 MiB", admin, big, 413)
    _attack(
        stack,
        attack_log,
        "condition nested 40 deep",
        admin,
        {**inline, "condition": "(" * 40 + "true" + ")" * 40},
        400,
        "deeper than 32 levels at position",
    )
    _attack(
        stack,
        attack_log,
        "condition of 5,000 characters",
        admin,
        {**inline, "condition": "payload.a == 1 or " * 277 + "true"},
        400,
        "longer than 1000 characters",
    )
    _attack(
        stack,
        attack_log,
        "condition calling code",
        admin,
        {**inline, "condition": "__import__('os').system('id')"},
        400,
        "unknown name '__import__' at position 1",
    )
    # The sender's subject is not on the bus, so the orchestrator's matcher never sees it:
    # a condition on it is refused where it is written (it could never match), with where.
    _attack(
        stack,
        attack_log,
        "condition on metadata.subject (not on the bus)",
        admin,
        {
            "event_type_pattern": "*",
            "condition": 'metadata.subject == "root"',
            "event": {**sample(2), "metadata": {"subject": "root"}},
        },
        400,
        "metadata.subject at position 1 is not carried",
    )


# --- the overview's figures (GET /api/v1/stats) -------------------------------------------

STATS = "/api/v1/stats"


def _stats(stack: Stack, headers: dict[str, str]) -> dict[str, Any]:
    with httpx.Client(base_url=stack.edge_url, timeout=15, headers=headers) as c:
        r = c.get(STATS)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_stats_move_when_events_are_accepted(stack: Stack, http: httpx.Client) -> None:
    reader = {"Authorization": f"Bearer {token(stack, 'read', subject=unique('viewer'))}"}
    before = _stats(stack, reader)
    groups = {g["group"]: g for g in before["consumer_lag"]}
    assert {"event-handler", "action-orchestrator"} <= set(groups), before
    assert not before.get("unavailable"), before
    agg = unique("stats-dev")
    batch = [
        {"event_type": "sensor.reading", "aggregate_id": agg, "payload": {"value": i, "unit": "C"}}
        for i in range(25)
    ]
    sent = http.post("/api/v1/events:batch", json={"events": batch})
    assert sent.status_code == 200 and sent.json()["accepted"] == 25, sent.text

    # The figure is a sliding minute: what earlier tests sent ages out of it while ours comes
    # in, so "before + 25" can stay out of reach (a full run timed out on it). Ours are in
    # the minute once the event store has them; tests/component/test_ingest_stats.py checks
    # exact movements on a database of its own.
    def moved() -> dict[str, Any] | None:
        ours = fetch_one(
            stack.postgres.url,
            "SELECT count(*) FROM ingestion.event_store WHERE aggregate_id = %s",
            (agg,),
        )
        now = _stats(stack, reader)
        if ours != (25,):
            return None
        return now if int(now.get("accepted_last_minute", 0)) >= 25 else None

    after = eventually(moved, timeout=30, what="25 accepted events in the last minute")
    assert float(after["ingest_rate_per_second"]) >= 25 / 60
    assert all(g.get("known") for g in after["consumer_lag"]), after
    # The relay empties the outbox and the handler catches up: both read 0 again.
    eventually(
        lambda: (lambda s: int(s.get("outbox_depth", 0)) == 0)(_stats(stack, reader)),
        timeout=30,
        what="the outbox emptied",
    )
    eventually(
        lambda: all(
            int(g.get("lag", 0)) == 0
            for g in _stats(stack, reader)["consumer_lag"]
            if g["group"] == "event-handler"
        ),
        timeout=30,
        what="the event handler caught up",
    )


def test_stats_count_failed_deliveries(stack: Stack, http: httpx.Client) -> None:
    reader = {"Authorization": f"Bearer {token(stack, 'read', subject=unique('viewer'))}"}
    base = int(_stats(stack, reader).get("deliveries_failed", 0))
    with receiver() as hook:
        hook.script("/down", default=Reply(500))
        etype = f"sensor.{unique('statsfail').replace('-', '_')}"
        rule = http.post(
            "/api/v1/rules",
            json={
                "name": unique("fails"),
                "event_type_pattern": etype,
                "target": {"url": hook.url("/down"), "secrets": [SECRET]},
            },
        )
        assert rule.status_code == 200, rule.text
        rule_id = rule.json()["rule_id"]
        try:
            sent = http.post(
                "/api/v1/events",
                json={
                    "event_type": etype,
                    "aggregate_id": unique("d"),
                    "payload": {"value": 1, "unit": "C"},
                },
            )
            assert sent.status_code == 202, sent.text
            eventually(
                lambda: int(_stats(stack, reader).get("deliveries_failed", 0)) >= base + 1,
                timeout=60,
                what="the failed delivery counted",
            )
        finally:
            http.delete(f"/api/v1/rules/{rule_id}")


def test_stats_attacks(stack: Stack, attack_log: Log) -> None:
    writer = {"Authorization": f"Bearer {token(stack, 'events:write', subject=unique('w'))}"}
    with httpx.Client(base_url=stack.edge_url, timeout=15) as c:
        for name, headers, expected in (
            ("no token", {}, 401),
            ("events:write token (read needed)", writer, 403),
        ):
            r = c.get(STATS, headers=headers)
            ok = r.status_code == expected
            attack_log.append(
                (f"stats: {name}", str(expected), f"{r.status_code} {r.text[:60]}", ok)
            )
            assert ok, r.text
        # The ingestion figures' internal call is not routed by the edge.
        r = c.post(
            "/cornjacket.v1.IngestStatsService/GetIngestStats",
            headers={**bearer(stack), "content-type": "application/grpc"},
            content=b"\x00\x00\x00\x00\x00",
        )
        refused = r.status_code in (403, 404) or r.headers.get("grpc-status") in ("7", "12")
        attack_log.append(
            (
                "stats: internal IngestStatsService through the edge",
                "refused",
                f"{r.status_code} grpc-status={r.headers.get('grpc-status')}",
                refused,
            )
        )
        assert refused, (r.status_code, r.headers)
