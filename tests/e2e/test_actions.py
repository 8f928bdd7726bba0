"""Webhooks end to end: events in through Envoy, rules managed over HTTP, deliveries to a
real local HTTP receiver started by the test (the stack runs the orchestrator with short
backoff, cooldown and rate-limit settings: see conftest.ACTIONS_ENV)."""

from __future__ import annotations

import base64
import itertools
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cornjacket_sdk.webhooks import verify

from services.cli.stack import Stack
from tests.support import eventually, unique
from tests.webhook_receiver import Receiver, Reply, receiver

pytestmark = pytest.mark.e2e

SECRET = "whsec_" + base64.b64encode(b"e" * 32).decode()
NEXT_SECRET = "whsec_" + base64.b64encode(b"n" * 32).decode()


@pytest.fixture(scope="module")
def hooks() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def create_rule(
    http: httpx.Client,
    url: str,
    *,
    pattern: str = "sensor.reading",
    condition: str = "",
    secrets: list[str] | None = None,
) -> dict[str, Any]:
    r = http.post(
        "/api/v1/rules",
        json={
            "name": unique("rule"),
            "event_type_pattern": pattern,
            "condition": condition,
            "target": {"url": url, "secrets": secrets or [SECRET]},
        },
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def send(http: httpx.Client, event_type: str, agg: str, payload: dict[str, Any]) -> str:
    r = http.post(
        "/api/v1/events", json={"event_type": event_type, "aggregate_id": agg, "payload": payload}
    )
    assert r.status_code == 202, r.text
    event_id: str = r.json()["event_id"]
    return event_id


def deliveries(http: httpx.Client, rule_id: str, status: str = "") -> list[dict[str, Any]]:
    params: dict[str, str | int] = {"rule_id": rule_id, "limit": 100}
    if status:
        params["status"] = status
    r = http.get("/api/v1/deliveries", params=params)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["deliveries"]
    return items


def breaker(http: httpx.Client, endpoint: str) -> dict[str, Any] | None:
    for b in http.get("/api/v1/breakers").json()["breakers"]:
        if b["endpoint"] == endpoint:
            found: dict[str, Any] = b
            return found
    return None


def test_rule_crud_over_http(http: httpx.Client, hooks: Receiver) -> None:
    rule = create_rule(http, hooks.url("/crud"), pattern="sensor.*", condition="payload.value > 1")
    rid = rule["rule_id"]
    assert rule["enabled"] is True and rule["disabled_reason"] == ""
    assert rule["target"]["secrets"] == [SECRET[:10] + "…"]
    assert http.get(f"/api/v1/rules/{rid}").json()["name"] == rule["name"]
    listed = http.get("/api/v1/rules", params={"limit": 100}).json()
    assert rid in [r["rule_id"] for r in listed["rules"]] and listed["total"] >= 1

    patched = http.patch(
        f"/api/v1/rules/{rid}",
        json={"condition": "payload.value > 2", "target": {"url": hooks.url("/crud2")}},
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["condition"] == "payload.value > 2" and body["target"]["url"].endswith("/crud2")
    assert body["target"]["secrets"] == [SECRET[:10] + "…"], "secrets kept"
    rotated = http.patch(
        f"/api/v1/rules/{rid}",
        json={"target": {"url": hooks.url("/crud2"), "secrets": [SECRET, NEXT_SECRET]}},
    ).json()
    assert len(rotated["target"]["secrets"]) == 2

    off = http.post(f"/api/v1/rules/{rid}:disable", json={"reason": "maintenance"}).json()
    assert off["enabled"] is False and off["disabled_reason"] == "maintenance"
    on = http.post(f"/api/v1/rules/{rid}:enable", json={}).json()
    assert on["enabled"] is True and on["disabled_reason"] == ""

    assert http.delete(f"/api/v1/rules/{rid}").status_code == 200
    missing = http.get(f"/api/v1/rules/{rid}")
    assert missing.status_code == 404 and rid in missing.json()["message"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (
            {"name": "x", "event_type_pattern": "sensor*", "target": {"url": "http://e.com/"}},
            "is not an event type",
        ),
        (
            {
                "name": "x",
                "event_type_pattern": "*",
                "condition": "payload.value >> 1",
                "target": {"url": "http://e.com/"},
            },
            "condition: expected a value or a path at position 16",
        ),
        (
            {"name": "x", "event_type_pattern": "*", "target": {"url": "file:///etc/passwd"}},
            "must start with http:// or https://",
        ),
        ({"name": "", "event_type_pattern": "*", "target": {"url": "http://e.com/"}}, "name"),
        (
            {
                "name": "x",
                "event_type_pattern": "*",
                "target": {"url": "http://e.com/", "headers": {"X-A": {"nested": 1}}},
            },
            "target.headers: the value of 'X-A' must be a string",
        ),
        (
            {
                "name": "x",
                "event_type_pattern": "*",
                "target": {"url": "http://e.com/", "headers": {"X-Key": "caf\u00e9"}},
            },
            "target.headers: the value of 'X-Key' is not a valid header value",
        ),
        (
            {"name": "x", "event_type_pattern": "*", "target": {"url": "http://\u2603.net/"}},
            "target.url host '\u2603.net' is not a valid host name",
        ),
    ],
)
def test_invalid_rules_answer_400_with_a_message(
    http: httpx.Client, body: dict[str, Any], needle: str
) -> None:
    r = http.post("/api/v1/rules", json=body)
    assert r.status_code == 400, r.text
    assert needle in r.json()["message"]


def test_delivery_queries_validate_their_filters(http: httpx.Client) -> None:
    assert http.get("/api/v1/deliveries", params={"status": "lost"}).status_code == 400
    assert http.get("/api/v1/deliveries", params={"since": "yesterday"}).status_code == 400
    r = http.get(
        "/api/v1/deliveries",
        params={"since": "2026-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z", "limit": 5},
    )
    assert r.status_code == 200 and r.json()["limit"] == 5
    assert http.get(f"/api/v1/deliveries/{'0' * 8}-0000-7000-8000-{'0' * 12}").status_code == 404


def test_condition_fires_for_85_not_70_and_the_request_is_signed(
    http: httpx.Client, hooks: Receiver
) -> None:
    path = f"/{unique('hot')}"
    rule = create_rule(http, hooks.url(path), condition="payload.value > 80")
    agg = unique("dev")
    send(http, "sensor.reading", agg, {"value": 70, "unit": "C"})
    hot = send(http, "sensor.reading", agg, {"value": 85, "unit": "C"})
    got = eventually(lambda: hooks.received(path), what="webhook")
    payload = verify(SECRET, got[0].headers, got[0].body)
    assert payload["type"] == "sensor.reading" and payload["rule_id"] == rule["rule_id"]
    assert payload["event"]["event_id"] == hot
    assert payload["event"]["payload"] == {"value": 85, "unit": "C"}
    assert got[0].headers["content-type"] == "application/json"
    done = eventually(lambda: deliveries(http, rule["rule_id"], "delivered"), what="delivered")
    assert [d["event_id"] for d in deliveries(http, rule["rule_id"])] == [hot], "70 did not fire"
    one = http.get(f"/api/v1/deliveries/{done[0]['delivery_id']}").json()
    assert one["delivery_id"] == got[0].headers["webhook-id"] == payload["delivery_id"]
    assert one["attempt_count"] == 1 and one["attempts"][0]["status_code"] == 200
    assert one["delivered_at"] and one["next_attempt_at"] == ""


def test_rotation_signs_with_every_secret(http: httpx.Client, hooks: Receiver) -> None:
    path = f"/{unique('rot')}"
    create_rule(http, hooks.url(path), pattern="user.login", secrets=[SECRET, NEXT_SECRET])
    send(http, "user.login", unique("u"), {"user_id": "u1", "ip": "10.0.0.1"})
    got = eventually(lambda: hooks.received(path), what="webhook")[0]
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    verify(SECRET, got.headers, got.body)
    verify(NEXT_SECRET, got.headers, got.body)


def test_failing_twice_then_succeeding_ends_delivered_with_three_attempts(
    http: httpx.Client, hooks: Receiver
) -> None:
    path = f"/{unique('flaky')}"
    hooks.script(path, Reply(500), Reply(503))
    rule = create_rule(http, hooks.url(path))
    send(http, "sensor.reading", unique("dev"), {"value": 1, "unit": "C"})
    d = eventually(lambda: deliveries(http, rule["rule_id"], "delivered"), what="delivered")[0]
    assert d["attempt_count"] == 3
    assert [(a["outcome"], a["status_code"]) for a in d["attempts"]] == [
        ("failure", 500),
        ("failure", 503),
        ("success", 200),
    ]
    ids = {r.headers["webhook-id"] for r in hooks.received(path)}
    assert ids == {d["delivery_id"]}, "one webhook-id across retries"


def test_duplicates_inside_the_window_are_suppressed(http: httpx.Client, hooks: Receiver) -> None:
    path = f"/{unique('dup')}"
    rule = create_rule(http, hooks.url(path))
    agg = unique("dev")
    first = send(http, "sensor.reading", agg, {"value": 1, "unit": "C"})
    second = send(http, "sensor.reading", agg, {"value": 2, "unit": "C"})
    eventually(lambda: len(deliveries(http, rule["rule_id"])) == 2, what="two jobs")
    eventually(lambda: deliveries(http, rule["rule_id"], "delivered"), what="delivered")
    by_event = {d["event_id"]: d for d in deliveries(http, rule["rule_id"])}
    assert by_event[first]["status"] == "delivered"
    assert by_event[second]["status"] == "suppressed"
    assert "less than 300s ago" in by_event[second]["last_error"]
    assert len(hooks.received(path)) == 1


def test_rate_limit_spaces_deliveries(http: httpx.Client, hooks: Receiver) -> None:
    # 300 a minute: one slot every 200 ms, shared by every worker.
    paths = [f"/{unique('rate')}" for _ in range(4)]
    event_type = f"rate.t{unique('x').replace('-', '')}"
    for p in paths:
        create_rule(http, hooks.url(p), pattern=event_type)
    send(http, event_type, unique("dev"), {})
    arrivals = sorted(
        eventually(
            lambda: (
                [r.at for p in paths for r in hooks.received(p)]
                if all(hooks.received(p) for p in paths)
                else None
            ),
            what="four deliveries",
        )
    )
    # Four slots 200 ms apart span 600 ms; unlimited, they would arrive within a few ms.
    # (Single gaps can shrink when one send starts late, so the span is what is checked.)
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(arrivals)]
    assert arrivals[-1] - arrivals[0] >= 0.45, gaps


def test_breaker_opens_after_five_failures_short_circuits_then_closes(
    http: httpx.Client,
) -> None:
    with receiver() as down:
        endpoint = f"http://127.0.0.1:{down.port}"
        first, later = f"/{unique('b')}", f"/{unique('b')}"
        down.script(first, default=Reply(500))
        down.script(later, default=Reply(500))
        rule = create_rule(http, down.url(first), condition="payload.value == 1")
        rule_later = create_rule(http, down.url(later), condition="payload.value == 2")
        send(http, "sensor.reading", unique("dev"), {"value": 1, "unit": "C"})
        eventually(
            lambda: (breaker(http, endpoint) or {}).get("state") == "open", what="breaker open"
        )
        assert len(down.received(first)) == 5
        b = breaker(http, endpoint)
        assert b is not None and b["consecutive_failures"] == 5 and b["retry_at"]

        # While open, a new job is short-circuited: recorded, but no request is made.
        send(http, "sensor.reading", unique("dev"), {"value": 2, "unit": "C"})

        def short_circuited() -> bool:
            ds = deliveries(http, rule_later["rule_id"])
            return bool(ds) and any(a["outcome"] == "short_circuited" for a in ds[0]["attempts"])

        eventually(short_circuited, what="short-circuited attempt")
        assert down.received(later) == [] and len(down.received(first)) == 5
        assert (breaker(http, endpoint) or {}).get("state") == "open"

        # The endpoint recovers; after the cooldown one trial goes through, the breaker
        # closes, and the waiting jobs are delivered.
        down.script(first, default=Reply(200))
        down.script(later, default=Reply(200))
        eventually(
            lambda: (
                deliveries(http, rule["rule_id"], "delivered")
                and deliveries(http, rule_later["rule_id"], "delivered")
            ),
            timeout=30,
            what="both delivered after the cooldown",
        )
        assert (breaker(http, endpoint) or {}).get("state") == "closed"
        assert len(down.received(first)) == 6 and len(down.received(later)) == 1
        d = deliveries(http, rule_later["rule_id"])[0]
        assert d["attempt_count"] == 1, "short-circuits spend no retry budget"


def test_a_slow_endpoint_does_not_delay_other_endpoints(
    http: httpx.Client, hooks: Receiver
) -> None:
    event_type = f"slow.t{unique('x').replace('-', '')}"
    with receiver() as slow:
        slow_rules = []
        for _ in range(5):
            p = f"/{unique('slow')}"
            slow.script(p, default=Reply(200, delay=30))
            slow_rules.append(create_rule(http, slow.url(p), pattern=event_type))
        fast = f"/{unique('fast')}"
        fast_rule = create_rule(http, hooks.url(fast), pattern=event_type)
        send(http, event_type, unique("dev"), {})
        eventually(lambda: slow.in_flight > 0, what="a slow request in flight")
        eventually(lambda: hooks.received(fast), what="the fast endpoint's webhook")
        # No slow attempt has finished yet (each takes until the 3 s timeout).
        assert slow.in_flight > 0
        assert all(deliveries(http, r["rule_id"])[0]["attempt_count"] == 0 for r in slow_rules)
        assert deliveries(http, fast_rule["rule_id"], "delivered")
        for r in slow_rules:
            http.delete(f"/api/v1/rules/{r['rule_id']}")


def test_killed_mid_delivery_loses_nothing_and_never_resends_acknowledged_jobs(
    http: httpx.Client, hooks: Receiver, stack: Stack
) -> None:
    acked, inflight, queued = (f"/{unique(n)}" for n in ("acked", "inflight", "queued"))
    acked_rule = create_rule(http, hooks.url(acked), pattern="system.alert")
    send(http, "system.alert", unique("a"), {"level": "info", "message": "before"})
    eventually(lambda: deliveries(http, acked_rule["rule_id"], "delivered"), what="acked")

    hooks.script(inflight, Reply(200, delay=2))
    inflight_rule = create_rule(http, hooks.url(inflight), pattern="user.logout")
    send(http, "user.logout", unique("u"), {})
    eventually(lambda: hooks.received(inflight), what="the in-flight request")
    child = stack.services["actions"]
    child.kill()  # SIGKILL while the receiver is still answering
    eventually(lambda: not stack.healthy(), what="Envoy sees the orchestrator gone")

    # Published while the orchestrator is down: must be picked up after the restart.
    queued_rule = create_rule_direct(stack, hooks.url(queued))
    send(http, "user.signup", unique("u"), {})
    time.sleep(0.5)
    child.start()
    eventually(stack.healthy, timeout=60, what="healthy again")

    eventually(
        lambda: deliveries(http, queued_rule, "delivered"), timeout=30, what="queued delivered"
    )
    # The killed attempt is repeated after its lease (timeout 3 s + 10 s).
    eventually(
        lambda: deliveries(http, inflight_rule["rule_id"], "delivered"),
        timeout=40,
        what="in-flight job delivered after the lease",
    )
    got = hooks.received(inflight)
    assert len(got) >= 2 and len({r.headers["webhook-id"] for r in got}) == 1
    assert len(hooks.received(acked)) == 1, "an acknowledged job is never sent again"
    assert len(hooks.received(queued)) == 1


def create_rule_direct(stack: Stack, url: str) -> str:
    """Create a rule while the API is down: straight into its table, as the API would."""
    import psycopg
    import uuid_utils

    from services.actions.secretbox import from_settings
    from services.cli.stack import secrets_key_path

    # Sealed with the stack's key, as the API would (the table refuses plaintext).
    sealed = from_settings("", secrets_key_path(stack.settings.data_dir)).seal(SECRET)
    rule_id = str(uuid_utils.uuid7())
    with psycopg.connect(stack.postgres.url) as conn:
        conn.execute(
            "INSERT INTO actions.rules (rule_id, name, event_type_pattern, target_url, secrets, "
            "created_at, updated_at) VALUES (%s, 'direct', 'user.signup', %s, %s, now(), now())",
            (rule_id, url, [sealed]),
        )
    return rule_id


def test_the_orchestrator_serves_metrics(http: httpx.Client, hooks: Receiver, stack: Stack) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    path = f"/{unique('metrics')}"
    rule = create_rule(http, hooks.url(path), pattern="system.alert")
    send(http, "system.alert", unique("a"), {"level": "info", "message": "metrics"})
    eventually(lambda: deliveries(http, rule["rule_id"], "delivered"), what="delivered")
    port = stack.settings.metrics_ports["actions"]

    def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    got = samples()
    assert got[("cornjacket_webhook_jobs_total", ())] >= 1
    assert got[("cornjacket_webhook_attempts_total", (("outcome", "success"),))] >= 1
    assert got[("cornjacket_webhook_attempt_seconds_count", ())] >= 1
    assert got[("cornjacket_grpc_requests_total", (("code", "OK"), ("method", "CreateRule")))] >= 1
    eventually(
        lambda: ("cornjacket_webhook_deliveries", (("status", "pending"),)) in samples(),
        what="sampled delivery gauges",
    )


def test_lineage_shows_the_webhook_an_event_caused(
    stack: Stack, http: httpx.Client, hooks: Receiver
) -> None:
    event_type = f"lineage.t{unique('x').split('-')[-1]}"
    rule = create_rule(http, hooks.url("/lineage"), pattern=event_type)
    r = http.post(
        "/api/v1/events",
        json={"event_type": event_type, "aggregate_id": unique("lin"), "payload": {"v": 1}},
    )
    assert r.status_code == 202, r.text
    event_id = r.json()["event_id"]
    eventually(lambda: hooks.received("/lineage"), timeout=30, what="the webhook")

    def webhook_hop() -> dict[str, Any] | None:
        hops = http.get(f"/api/v1/events/{event_id}/lineage").json()["hops"]
        found = [h for h in hops if h["stage"] == "webhook" and h["status"] == "done"]
        return found[0] if found else None

    hop = eventually(webhook_hop, timeout=30, what="a delivered webhook hop")
    assert rule["rule_id"] in hop["detail"] and "/lineage" in hop["detail"]
    listed = http.get("/api/v1/deliveries", params={"event_id": event_id}).json()
    assert [d["event_id"] for d in listed["deliveries"]] == [event_id]
