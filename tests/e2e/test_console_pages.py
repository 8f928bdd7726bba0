"""The console's pages in a real browser (issue 19): device, lineage, dead letters, rules and
deliveries, breakers, audit, projections and the overview, through Envoy against the shared
stack, with a real webhook receiver. Every page is checked for console errors and failed
requests, at 1280 px and at phone width (390 px, no horizontal overflow), and reached by
keyboard. Screenshots go to CJ_CONSOLE_SHOTS (default: the test's temporary directory)."""

from __future__ import annotations

import math
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uuid_utils

from services.cli.stack import Stack
from services.core.events import Event
from services.infra.codec import encode_event
from tests.support import eventually, fetch_one, token, unique
from tests.webhook_receiver import Receiver, Reply, receiver

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("CJ_CHROMIUM", "/usr/bin/chromium")
Log = list[tuple[str, str, str, bool]]
ADMIN_PAGES = ("Dead letters", "Rules", "Deliveries", "Breakers", "Audit")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        message = f"BROWSER TESTS SKIPPED: no Chromium at {CHROMIUM} (apt-get install -y chromium)"
        if os.environ.get("CJ_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("CJ_CONSOLE_SHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        return Path(where)
    return tmp_path_factory.mktemp("console-pages")


@pytest.fixture(scope="module")
def hooks() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


class Console:
    """A signed-in browser tab that records console errors, page errors and failed requests."""

    def __init__(self, browser: Any, stack: Stack, jwt: str, width: int = 1280) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.base = f"{stack.edge_url}/console/"
        self.page.on(
            "console",
            lambda m: (
                self.problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on(
            "response",
            lambda r: self.problems.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None,
        )
        self.page.goto(self.base)
        self.page.get_by_label("token").fill(jwt)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.get_by_role("heading", name="Overview").wait_for()

    def open(self, route: str, heading: str) -> Any:
        self.page.goto(f"{self.base}#/{route}")
        self.page.get_by_role("heading", name=heading, exact=False).first.wait_for()
        return self.page

    def shot(self, where: Path, name: str, full_page: bool = True) -> None:
        self.page.screenshot(path=str(where / f"{name}.png"), full_page=full_page)

    def close(self) -> None:
        self.context.close()


def send(http: httpx.Client, device: str, payload: dict[str, Any]) -> str:
    r = http.post(
        "/api/v1/events",
        json={"event_type": "sensor.reading", "aggregate_id": device, "payload": payload},
    )
    assert r.status_code == 202, r.text
    event_id: str = r.json()["event_id"]
    return event_id


def test_an_event_in_the_tail_on_its_device_page_and_its_lineage(
    stack: Stack, http: httpx.Client, browser: Any, shots: Path
) -> None:
    c = Console(browser, stack, token(stack, "read", subject="console-reader"))
    page = c.open("tail", "Live tail")
    page.get_by_test_id("tail-state").filter(has_text="live").wait_for()
    device = unique("console-dev")
    event_id = send(http, device, {"value": 21.5, "unit": "C"})
    row = page.locator(f'tr[data-event-id="{event_id}"]')
    row.wait_for()

    # the aggregate links to the device page: latest values, the chart, the last event
    row.get_by_role("link", name=device).click()
    page.get_by_role("heading", name=f"Device {device}").wait_for()
    page.get_by_test_id("latest").filter(has_text="21.5").wait_for()
    page.get_by_test_id("last-event").filter(has_text=event_id).wait_for()
    assert page.get_by_test_id("device-health").inner_text() == "ok"
    page.locator('[data-testid="chart"][data-points="1"] canvas').wait_for()
    page.get_by_label("Bucket").select_option("10s")
    page.locator('[data-testid="chart"][data-points="1"] canvas').wait_for()
    c.shot(shots, "device")

    # ... and the last event to its lineage: the hops as a timeline
    page.get_by_test_id("last-event").get_by_role("link").click()
    page.get_by_role("heading", name="Event lineage").wait_for()
    timeline = page.get_by_test_id("lineage")
    for stage in ("accepted", "event_store", "published"):
        timeline.locator(f'li[data-stage="{stage}"]').filter(has_text="done").wait_for()
    timeline.locator('li[data-stage="projection"]').first.wait_for()
    assert page.get_by_label("Event id").input_value() == event_id
    c.shot(shots, "lineage")
    assert c.problems == [], c.problems
    c.close()


def test_a_broken_webhook_target_replayed_from_the_dead_letter_page(
    stack: Stack, http: httpx.Client, browser: Any, shots: Path
) -> None:
    with receiver() as down:
        path = f"/{unique('broken')}"
        down.script(path, default=Reply(500))
        device = unique("dlq-dev")
        r = http.post(
            "/api/v1/rules",
            json={
                "name": unique("broken-rule"),
                "event_type_pattern": "sensor.reading",
                "condition": f'aggregate_id == "{device}"',
                "target": {"url": down.url(path)},
            },
        )
        assert r.status_code == 200, r.text
        rule_id = r.json()["rule_id"]
        event_id = send(http, device, {"value": 3, "unit": "C"})

        def status() -> str:
            got = http.get("/api/v1/deliveries", params={"rule_id": rule_id}).json()
            ds = got.get("deliveries", [])
            return str(ds[0]["status"]) if ds else ""

        eventually(lambda: status() == "failed", timeout=60, what="the delivery in the DLQ")

        c = Console(browser, stack, token(stack, subject="console-admin"))
        page = c.open("breakers", "Breakers")
        page.locator(f'tr[data-endpoint="http://127.0.0.1:{down.port}"]').wait_for()
        c.shot(shots, "breakers")

        page = c.open("dlq", "Dead letters")
        row = page.get_by_test_id("failed-deliveries").locator(f'tr[data-event-id="{event_id}"]')
        row.wait_for()
        row.get_by_role("button", name="Inspect").click()
        page.get_by_test_id("attempts").filter(has_text="500").wait_for()
        c.shot(shots, "dead-letters")

        down.script(path, default=Reply(200))  # the target is fixed
        row.get_by_role("button", name="Replay").click()
        assert status() == "failed", "nothing happens before the confirmation"
        row.get_by_role("button", name="Confirm").click()
        page.get_by_role("status").filter(has_text="replayed 1").wait_for()
        eventually(lambda: status() == "delivered", timeout=60, what="delivered after replay")
        assert [x.path for x in down.received(path)][-1] == path

        page = c.open(f"deliveries/{rule_id}", "Deliveries")
        delivered = page.locator(f'tr[data-event-id="{event_id}"][data-status="delivered"]')
        delivered.wait_for()
        delivered.get_by_role("button", name="Attempts").click()
        page.get_by_test_id("attempts").filter(has_text="success").wait_for()
        c.shot(shots, "deliveries")

        # the replay is in the audit log, with who did it
        page = c.open("audit", "Audit log")
        page.get_by_test_id("audit").locator("tr").filter(has_text="console-admin").first.wait_for()
        c.shot(shots, "audit")
        assert c.problems == [], c.problems
        c.close()


def test_a_rule_with_a_bad_condition_shows_where_then_a_good_one_fires(
    stack: Stack, http: httpx.Client, browser: Any, hooks: Receiver, shots: Path
) -> None:
    c = Console(browser, stack, token(stack, subject="console-admin"))
    page = c.open("rules", "Rules")
    page.get_by_role("button", name="New rule").click()
    form = page.get_by_role("form", name="new rule")
    name = unique("console-rule")
    path = f"/{unique('fires')}"
    form.get_by_label("Name").fill(name)
    form.get_by_label("Event type pattern").fill("sensor.reading")
    form.get_by_label("Condition").fill("payload.value >> 1")
    form.get_by_label("Webhook URL").fill(hooks.url(path))
    form.get_by_role("button", name="Create rule").click()
    error = page.get_by_test_id("condition-error")
    error.wait_for()
    # the caret stands under the second '>' (position 16, 1-based)
    text = error.inner_text()
    assert "expected a value or a path at position 16" in text, text
    assert text.splitlines()[1].index("^") == 15, text
    assert form.get_by_label("Condition").get_attribute("aria-invalid") == "true"
    c.shot(shots, "rule-error")
    # the refused rule's 400 (and Chromium's log line of it) is the API's answer, not a fault
    c.problems = [p for p in c.problems if "400" not in p]

    device = unique("rule-dev")
    form.get_by_label("Condition").fill(f'payload.value > 80 and aggregate_id == "{device}"')
    form.get_by_role("button", name="Create rule").click()
    page.get_by_test_id("rules-note").filter(has_text=f"created {name}").wait_for()
    row = page.get_by_test_id("rules").locator("tr").filter(has_text=name)
    row.wait_for()
    c.shot(shots, "rules")

    send(http, device, {"value": 50, "unit": "C"})
    fired = send(http, device, {"value": 90, "unit": "C"})
    got = eventually(lambda: hooks.received(path), timeout=30, what="the rule's webhook")
    assert len(got) == 1 and fired.encode() in got[0].body

    # edit: the condition changes, the rule keeps its id
    row.get_by_role("button", name="Edit").click()
    edit = page.get_by_role("form", name="edit rule")
    edit.get_by_label("Condition").fill(f'payload.value > 95 and aggregate_id == "{device}"')
    edit.get_by_role("button", name="Save").click()
    page.get_by_test_id("rules-note").filter(has_text=f"saved {name}").wait_for()
    row.filter(has_text="payload.value > 95").wait_for()

    row.get_by_role("button", name="Disable").click()
    row.filter(has_text="disabled").wait_for()
    row.get_by_role("button", name="Enable").click()
    row.filter(has_text="enabled").wait_for()
    assert c.problems == [], c.problems
    c.close()


def test_a_read_only_token_sees_no_admin_actions(
    stack: Stack, browser: Any, attack_log: Log
) -> None:
    c = Console(browser, stack, token(stack, "read", subject="console-reader"))
    nav = c.page.get_by_role("navigation", name="pages")
    for label in ADMIN_PAGES:
        assert nav.get_by_role("link", name=label).count() == 0, label
    assert nav.get_by_role("link", name="Live tail").count() == 1
    # typed in by hand, the admin pages show the API's refusal and still no admin buttons
    for route, heading in (("dlq", "Dead letters"), ("rules", "Rules")):
        page = c.open(route, heading)
        page.get_by_role("alert").first.wait_for()
        for button in ("Replay", "Discard", "New rule", "Edit", "Disable", "Delete"):
            assert page.get_by_role("button", name=button).count() == 0, (route, button)
        text = page.get_by_role("alert").first.inner_text()
        ok = "(403)" in text
        attack_log.append(
            (f"console: read-only token opens #/{route}", "API refuses (403)", text[-40:], ok)
        )
        assert ok, text
    with httpx.Client(base_url=stack.edge_url, timeout=15) as anon:
        r = anon.post(
            "/api/v1/dlq:replay",
            json={"filter": {"status": "pending"}, "limit": 1},
            headers={"Authorization": f"Bearer {token(stack, 'read', subject='console-reader')}"},
        )
    attack_log.append(
        (
            "console: read-only token replays dead letters by hand",
            "403",
            str(r.status_code),
            r.status_code == 403,
        )
    )
    assert r.status_code == 403
    c.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_every_page_fits_is_keyboard_reachable_and_logs_no_error(
    stack: Stack, http: httpx.Client, browser: Any, shots: Path, width: int
) -> None:
    device = unique("fit-dev")
    send(http, device, {"value": 7, "unit": "C"})
    c = Console(browser, stack, token(stack, subject="console-admin"), width=width)
    pages = [
        ("overview", "Overview"),
        ("tail", "Live tail"),
        (f"device/{device}", "Device"),
        ("lineage", "Event lineage"),
        ("projections", "Projections"),
        ("dlq", "Dead letters"),
        ("rules", "Rules"),
        ("deliveries", "Deliveries"),
        ("breakers", "Breakers"),
        ("audit", "Audit log"),
    ]
    for route, heading in pages:
        if route in ("tail", "lineage"):  # a stream that never idles; no call without an id
            page = c.open(route, heading)
        else:
            # hash routes do not reload the page: wait for the page's own API answers
            with c.page.expect_response(lambda r: "/api/v1/" in r.url or "/health" in r.url):
                page = c.open(route, heading)
            page.wait_for_load_state("networkidle")
        scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll <= inner, f"{route} overflows at {width}px: {scroll} > {inner}"
        if width == 390 or route in ("overview", "projections"):
            c.shot(shots, f"{route.split('/')[0]}-{width}")
    page = c.open("overview", "Overview")
    page.get_by_test_id("dlq-pending").wait_for()
    page.get_by_test_id("anomalies-hour").wait_for()

    # the projections browser pages through the rows (26 more devices: at least two pages)
    batch = [
        {
            "event_type": "sensor.reading",
            "aggregate_id": f"{device}-{i}",
            "payload": {"value": i, "unit": "C"},
        }
        for i in range(26)
    ]
    assert http.post("/api/v1/events:batch", json={"events": batch}).status_code == 200
    eventually(
        lambda: http.get("/api/v1/projections/sensor_state/" + f"{device}-25").status_code == 200,
        timeout=60,
        what="the batch's projections",
    )
    page = c.open("projections", "Projections")
    page.get_by_test_id("page-range").filter(has_text=re.compile(r"^1\u201325 of \d+$")).wait_for()
    assert page.get_by_test_id("projections").locator("tr").count() == 25
    page.get_by_role("button", name="Next").click()
    page.get_by_test_id("page-range").filter(has_text=re.compile(r"^26\u2013")).wait_for()
    page.get_by_role("button", name="Previous").click()
    page.get_by_test_id("page-range").filter(has_text=re.compile(r"^1\u201325 ")).wait_for()

    # keyboard: Tab from the top reaches every nav link and the page's primary button
    page = c.open("rules", "Rules")
    # From the top of a freshly loaded page (the link clicked to get here would otherwise be
    # where Tab starts, and a shared stack's many rules put the nav 30 stops away): Tab until
    # every label is reached, in at most one pass over the page's focusable elements.
    page.reload()
    page.get_by_role("button", name="New rule").wait_for()
    wanted = {"Overview", "Live tail", "Devices", "Dead letters", "Audit", "New rule"}
    stops = page.evaluate(
        "document.querySelectorAll('a[href], button, input, select, textarea, [tabindex]').length"
    )
    reached: list[str] = []
    for _ in range(int(stops) + 1):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.textContent.trim()"))
        if wanted <= set(reached):
            break
    for label in sorted(wanted):
        assert label in reached, (label, reached)
    assert c.problems == [], c.problems
    c.close()


def test_the_tail_keeps_up_with_a_burst_and_stays_usable(
    stack: Stack, http: httpx.Client, browser: Any, shots: Path
) -> None:
    """3,000 events sent at about 1,000/s: the tail counts every one, keeps the last 500
    rows, and its buttons answer while the burst arrives."""
    c = Console(browser, stack, token(stack, "read", subject="console-reader"))
    page = c.open("tail", "Live tail")
    event_type = f"tailload.t{unique('b').replace('-', '')}"
    page.get_by_label("Event type prefix").fill(event_type)
    page.get_by_role("button", name="Apply").click()
    page.get_by_test_id("tail-state").filter(has_text="live").wait_for()

    done = threading.Event()

    def burst() -> None:
        with httpx.Client(base_url=stack.edge_url, timeout=30, headers=http.headers) as client:
            for n in range(6):
                started = time.monotonic()
                events = [
                    {
                        "event_type": event_type,
                        "aggregate_id": f"load-{i % 50}",
                        "payload": {"n": i},
                    }
                    for i in range(n * 500, (n + 1) * 500)
                ]
                r = client.post("/api/v1/events:batch", json={"events": events})
                assert r.status_code == 200, r.text
                # pacing of the load (500 events per half second), not synchronisation
                time.sleep(max(0.0, 0.5 - (time.monotonic() - started)))
        done.set()

    sender = threading.Thread(target=burst, daemon=True)
    sender.start()
    page.get_by_test_id("tail-seen").filter(has_text=re.compile(r"^[1-9]")).wait_for()
    page.get_by_role("button", name="Pause").click()
    page.get_by_role("button", name=re.compile(r"^Resume \(\d+\)$")).wait_for()
    sender.join(timeout=120)
    assert done.is_set(), "the burst was not accepted"
    page.get_by_test_id("tail-seen").filter(has_text=re.compile(r"^3000$")).wait_for(
        timeout=120_000
    )
    page.get_by_role("button", name=re.compile(r"^Resume")).click()
    rows = page.get_by_test_id("tail").locator("tr")
    page.wait_for_function("document.querySelectorAll('[data-testid=tail] tr').length === 500")
    assert rows.count() == 500
    assert rows.first.inner_text().count(event_type) == 1
    c.shot(shots, "live-tail-burst", full_page=False)
    assert c.problems == [], c.problems
    c.close()


def test_the_device_page_marks_the_ai_services_anomalies(
    stack: Stack, http: httpx.Client, browser: Any, shots: Path
) -> None:
    """Calm readings every 5 minutes (the stack's warm-up is 30), then a spike: the device
    page shows it anomalous, with the anomaly in the chart's table and a link to its reading."""
    device, warmup = unique("spiky"), 30
    t0 = datetime.now(UTC) - timedelta(minutes=5 * (warmup + 6))
    events = [
        {
            "event_type": "sensor.reading",
            "aggregate_id": device,
            "event_time": (t0 + timedelta(minutes=5 * i)).isoformat(),
            "payload": {
                "value": 45.0 if i == warmup + 5 else 20.0 + 0.3 * math.sin(i * 1.7),
                "unit": "C",
            },
        }
        for i in range(warmup + 6)
    ]
    r = http.post("/api/v1/events:batch", json={"events": events})
    assert r.status_code == 200, r.text
    spike = r.json()["results"][-1]["event_id"]
    eventually(
        lambda: (
            http.get("/api/v1/inference/anomalies", params={"device": device})
            .json()
            .get("anomalies")
        ),
        timeout=90,
        what="the spike's anomaly",
    )

    c = Console(browser, stack, token(stack, "read", subject="console-reader"))
    page = c.open(f"device/{device}", f"Device {device}")
    page.get_by_test_id("device-health").filter(has_text="anomalous").wait_for(timeout=60_000)
    page.get_by_label("Range").select_option("24h")
    marked = page.get_by_test_id("anomalies").locator("tr")
    marked.first.wait_for()
    assert marked.count() == 1
    assert marked.first.get_by_role("link").get_attribute("href") == f"#/lineage/{spike}"
    page.locator('[data-testid="chart"] canvas').wait_for()
    c.shot(shots, "device-anomaly")
    assert c.problems == [], c.problems
    c.close()


def dead_letter(stack: Stack, aggregate: str) -> str:
    """A poison event as the event handler leaves it (its DLQ row), as tests/e2e/test_dlq_http.py
    makes one."""
    now = datetime.now(UTC)
    event = Event(
        str(uuid_utils.uuid7()), "sensor.reading", aggregate, now, now, {"value": 1, "unit": "C"}
    )
    with psycopg.connect(stack.postgres.url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO eventhandler.dlq (consumer, event_id, event_payload, error_message) "
            "VALUES ('event-handler', %s, %s, 'projection failed after retries: test') "
            "RETURNING dlq_id::text",
            (event.event_id, encode_event(event)),
        ).fetchone()
    assert row is not None
    dlq_id: str = row[0]
    return dlq_id


def test_event_handler_dead_letters_inspected_replayed_and_discarded(
    stack: Stack, http: httpx.Client, browser: Any
) -> None:
    aggregate = unique("poison")
    replay_id, discard_id = dead_letter(stack, aggregate), dead_letter(stack, aggregate)
    c = Console(browser, stack, token(stack, subject="console-admin"))
    page = c.open("dlq", "Dead letters")
    table = page.get_by_test_id("dead-letters")
    row = table.locator(f'tr[data-dlq-id="{replay_id}"]')
    row.get_by_role("button", name="Inspect").click()
    table.get_by_text("projection failed after retries: test").first.wait_for()
    row.get_by_role("button", name="Replay").click()
    row.get_by_role("button", name="Confirm").click()
    page.get_by_role("status").filter(has_text=f"replay {replay_id}: replayed").wait_for()
    assert http.get(f"/api/v1/dlq/{replay_id}").json()["status"] == "replayed"
    assert http.get(f"/api/v1/projections/sensor_state/{aggregate}").status_code == 200

    row = table.locator(f'tr[data-dlq-id="{discard_id}"]')
    row.get_by_role("button", name="Discard").click()
    row.get_by_role("button", name="Cancel").click()
    assert http.get(f"/api/v1/dlq/{discard_id}").json()["status"] == "pending"
    row.get_by_role("button", name="Discard").click()
    row.get_by_role("button", name="Confirm").click()
    page.get_by_role("status").filter(has_text=f"discard {discard_id}: discarded").wait_for()
    assert http.get(f"/api/v1/dlq/{discard_id}").json()["status"] == "discarded"
    # the list shows pending ones only: it reloads without the discarded one
    table.locator(f'tr[data-dlq-id="{discard_id}"]').wait_for(state="detached")
    assert c.problems == [], c.problems
    c.close()


def test_a_rule_is_tested_against_a_sample_event(
    stack: Stack, http: httpx.Client, browser: Any, hooks: Receiver, shots: Path
) -> None:
    """issue 19: POST /api/v1/rules:test from the rules page, typed and picked from the table."""
    name = unique("tested-rule")
    never = f"/{unique('never')}"
    made = http.post(
        "/api/v1/rules",
        json={
            "name": name,
            "event_type_pattern": "sensor.*",
            "condition": "payload.value >= 100",
            "target": {"url": hooks.url(never)},
            "enabled": False,
        },
    )
    assert made.status_code == 200, made.text
    c = Console(browser, stack, token(stack, subject="console-admin"))
    page = c.open("rules", "Rules")
    panel = page.get_by_role("form", name="test a rule")
    panel.get_by_label("Event type pattern").fill("sensor.*")
    panel.get_by_label("Condition").fill("payload.value >> 1")
    panel.get_by_role("button", name="Test").click()
    error = page.get_by_test_id("test-condition-error")
    error.wait_for()
    text = error.inner_text()
    assert "expected a value or a path at position 16" in text, text
    assert text.splitlines()[1].index("^") == 15, text
    c.problems = [p for p in c.problems if "400" not in p]  # the API's answer, not a fault

    panel.get_by_label("Condition").fill('payload.value > 80 and metadata.source == "mqtt"')
    panel.get_by_label("Source (metadata.source)").select_option("mqtt")
    panel.get_by_label("Payload (JSON object)").fill('{"value": 85, "unit": "C"}')
    panel.get_by_role("button", name="Test").click()
    result = page.get_by_test_id("test-result")
    result.filter(has_text="Matches: a delivery would be made").wait_for()
    c.shot(shots, "rule-test")
    panel.get_by_label("Payload (JSON object)").fill('{"value": 70}')
    panel.get_by_role("button", name="Test").click()
    result.filter(has_text="Does not match (pattern: yes, condition: no)").wait_for()
    panel.get_by_label("Payload (JSON object)").fill("[1, 2")
    panel.get_by_role("button", name="Test").click()
    panel.get_by_role("alert").filter(has_text="payload is not JSON").wait_for()

    # picked from the table: the stored (disabled) rule is tested by its id
    row = page.get_by_test_id("rules").locator("tr").filter(has_text=name)
    row.get_by_role("button", name="Test").click()
    page.get_by_test_id("test-rule-name").filter(has_text=name).wait_for()
    panel = page.get_by_role("form", name="test a rule")
    panel.get_by_label("Payload (JSON object)").fill('{"value": 100}')
    with page.expect_request(lambda r: r.url.endswith("/api/v1/rules:test")) as sent:
        panel.get_by_role("button", name="Test").click()
    assert '"rule_id"' in (sent.value.post_data or "")
    page.get_by_test_id("test-result").filter(has_text="Matches").wait_for()
    assert hooks.received(never) == []  # tested, not delivered
    assert c.problems == [], c.problems
    c.close()
    http.delete(f"/api/v1/rules/{made.json()['rule_id']}")


def test_the_overview_shows_ingest_rate_outbox_and_consumer_lag(
    stack: Stack, http: httpx.Client, browser: Any, shots: Path
) -> None:
    """issue 19: GET /api/v1/stats on the overview, for a read-only token too."""
    c = Console(browser, stack, token(stack, "read", subject=unique("console-viewer")))
    page = c.page
    lag = page.get_by_test_id("consumer-lag")
    lag.locator('tr[data-group="event-handler"]').wait_for()
    page.get_by_test_id("outbox-depth").wait_for()

    def accepted() -> int:
        text = page.get_by_test_id("accepted-minute").inner_text()
        return int(re.match(r"\d+", text).group())  # type: ignore[union-attr]

    device = unique("overview-dev")
    batch = [
        {
            "event_type": "sensor.reading",
            "aggregate_id": device,
            "payload": {"value": i, "unit": "C"},
        }
        for i in range(40)
    ]
    r = http.post("/api/v1/events:batch", json={"events": batch})
    assert r.status_code == 200 and r.json()["accepted"] == 40, r.text

    # The page refreshes every 5 s; the figure is a sliding minute at most about a second
    # old. What earlier tests sent ages out of it while ours comes in, so "before + 40" can
    # stay out of reach (a full run timed out on it): ours are in it once the event store
    # has them, and the page then shows at least them.
    def shown() -> bool:
        ours = fetch_one(
            stack.postgres.url,
            "SELECT count(*) FROM ingestion.event_store WHERE aggregate_id = %s",
            (device,),
        )
        return ours == (40,) and accepted() >= 40

    eventually(shown, timeout=40, what="the overview's ingest figure")
    page.get_by_test_id("ingest-rate").filter(has_text=re.compile(r"^\d+\.\d/s$")).wait_for()
    c.shot(shots, "overview-flow")
    assert c.problems == [], c.problems
    c.close()
