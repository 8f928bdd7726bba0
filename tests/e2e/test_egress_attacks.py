"""Egress attacks: webhook rules aimed at loopback, private, link-local, shared, unique-local
or unspecified addresses, through Envoy with an admin token, on a stack with the default
settings (blocking on, no allow list: what `make run` starts).

Each target is refused when the rule is saved (400), or, for a rule already stored (saved
before the guard, simulated by changing it in PostgreSQL), at delivery: recorded as a
blocked attempt and never sent. A local receiver stands where loopback targets point, so a
request that got through would be seen. Addresses outside this machine are only ever
refused at save: no event is sent to a rule that points at them.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from services.cli.stack import Stack
from tests.e2e.conftest import ACTIONS_ENV
from tests.support import bearer, eventually, running_stack, unique
from tests.webhook_receiver import Receiver, receiver

pytestmark = pytest.mark.e2e

Row = list[tuple[str, str, str, bool]]


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {k: v for k, v in ACTIONS_ENV.items() if k != "CJ_ACTIONS_ALLOWED_TARGETS"}
    with running_stack(
        Path(tmp_path_factory.mktemp("egress")), {"CJ_LOG_FORMAT": "json", **env}
    ) as s:
        yield s


@pytest.fixture(scope="module")
def http(own_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=own_stack.edge_url, timeout=15, headers=bearer(own_stack)) as client:
        yield client


@pytest.fixture(scope="module")
def hooks() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def _loopback_name() -> str:
    """A name the resolver answers with a loopback address (not spelled 'localhost'): this
    machine's host name where /etc/hosts maps it so, else 'localhost.'."""
    name = socket.gethostname()
    try:
        infos = socket.getaddrinfo(name, None)
    except OSError:
        return "localhost."
    if infos and all(str(i[4][0]).startswith(("127.", "::1")) for i in infos):
        return name
    return "localhost."


def create(http: httpx.Client, url: str, *, enabled: bool = True) -> httpx.Response:
    return http.post(
        "/api/v1/rules",
        json={
            "name": unique("egress"),
            "event_type_pattern": "egress.probe",
            "target": {"url": url},
            "enabled": enabled,
        },
    )


def save_targets(hooks: Receiver, stack: Stack) -> list[tuple[str, str]]:
    port = hooks.port
    return [
        ("loopback", f"http://127.0.0.1:{port}/x"),
        ("localhost", f"http://localhost:{port}/x"),
        ("decimal 2130706433", f"http://2130706433:{port}/x"),
        ("octal 0177.0.0.1", f"http://0177.0.0.1:{port}/x"),
        ("hex 0x7f.1", f"http://0x7f.1:{port}/x"),
        ("IPv4-mapped [::ffff:127.0.0.1]", f"http://[::ffff:127.0.0.1]:{port}/x"),
        ("IPv6 loopback [::1]", f"http://[::1]:{port}/x"),
        ("cloud metadata 169.254.169.254", "http://169.254.169.254/latest/meta-data/"),
        ("private 10.0.0.1", "http://10.0.0.1/x"),
        ("shared 100.64.0.1", "http://100.64.0.1/x"),
        ("unique-local [fc00::1]", "http://[fc00::1]/x"),
        ("unspecified 0.0.0.0", f"http://0.0.0.0:{port}/x"),
        ("name resolving to loopback", f"http://{_loopback_name()}:{port}/x"),
        (
            "Envoy admin quitquitquit",
            f"http://127.0.0.1:{stack.settings.envoy_admin_port}/quitquitquit",
        ),
    ]


def test_forbidden_targets_are_refused_when_the_rule_is_saved(
    http: httpx.Client, hooks: Receiver, own_stack: Stack, attack_log: Row
) -> None:
    failures = []
    for name, url in save_targets(hooks, own_stack):
        r = create(http, url, enabled=False)
        if r.status_code == 200:  # never leave a rule aimed there
            http.delete(f"/api/v1/rules/{r.json()['rule_id']}")
        ok = r.status_code == 400 and ("forbidden" in r.text or "not a valid host" in r.text)
        attack_log.append((f"webhook rule -> {name}", "400 at save", str(r.status_code), ok))
        if not ok:
            failures.append((name, r.status_code, r.text[:200]))
    assert not failures
    # An update is checked as a create is.
    r = create(http, "https://93.184.216.34/hook", enabled=False)
    assert r.status_code == 200, r.text
    rule_id = r.json()["rule_id"]
    upd = http.patch(
        f"/api/v1/rules/{rule_id}", json={"target": {"url": f"http://127.0.0.1:{hooks.port}/"}}
    )
    attack_log.append(
        (
            "webhook rule update -> loopback",
            "400 at save",
            str(upd.status_code),
            upd.status_code == 400,
        )
    )
    http.delete(f"/api/v1/rules/{rule_id}")
    assert upd.status_code == 400, upd.text


def test_stored_rules_aimed_at_loopback_are_blocked_at_delivery(
    http: httpx.Client, hooks: Receiver, own_stack: Stack, attack_log: Row
) -> None:
    """Rules stored before the guard (or with blocking off): created disabled with a
    public target, pointed at loopback in PostgreSQL, enabled, then an event matches."""
    port = hooks.port
    admin = own_stack.settings.envoy_admin_port
    targets = [
        ("loopback", f"http://127.0.0.1:{port}/stored"),
        ("localhost", f"http://localhost:{port}/stored"),
        ("decimal 2130706433 (resolver reads it)", f"http://2130706433:{port}/stored"),
        ("Envoy admin quitquitquit", f"http://127.0.0.1:{admin}/quitquitquit"),
    ]
    event_type = f"egress.{unique('stored').replace('-', '_')}"
    rule_ids: dict[str, str] = {}
    for name, url in targets:
        r = create(http, "https://93.184.216.34/never", enabled=False)
        assert r.status_code == 200, r.text
        rule_id = r.json()["rule_id"]
        with psycopg.connect(own_stack.postgres.url) as conn:
            n = conn.execute(
                "UPDATE actions.rules SET target_url = %s, event_type_pattern = %s, "
                "enabled = true WHERE rule_id = %s",
                (url, event_type, rule_id),
            ).rowcount
        assert n == 1
        rule_ids[name] = rule_id
    r = http.post(
        "/api/v1/events",
        json={"event_type": event_type, "aggregate_id": "probe", "payload": {"v": 1}},
    )
    assert r.status_code == 202, r.text

    def settled() -> dict[str, dict[str, Any]] | None:
        out = {}
        for name, rule_id in rule_ids.items():
            ds = http.get("/api/v1/deliveries", params={"rule_id": rule_id}).json()["deliveries"]
            if not ds or ds[0]["status"] == "pending":
                return None
            out[name] = ds[0]
        return out

    done = eventually(settled, what="every stored rule's delivery settled", timeout=60)
    failures = []
    for name, d in done.items():
        outcomes = [a["outcome"] for a in d["attempts"]]
        ok = d["status"] == "failed" and outcomes == ["blocked"]
        got = f"{d['status']} {','.join(outcomes)}"
        attack_log.append((f"stored webhook rule -> {name}", "failed blocked", got, ok))
        if not ok:
            failures.append((name, got, d.get("last_error", "")))
    assert not failures
    assert hooks.received("/stored") == [], "nothing reached the receiver"
    # The local Envoy is still there (its admin port was never sent a request).
    assert http.get("/health").status_code == 200
    for rule_id in rule_ids.values():
        http.delete(f"/api/v1/rules/{rule_id}")
