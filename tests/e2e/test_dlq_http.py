"""The DLQ API through Envoy (HTTP/JSON) and the `cornjacket dlq` command."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime

import httpx
import psycopg
import pytest
import uuid_utils

from services.cli.stack import Stack
from services.core.events import Event
from services.infra.codec import encode_event
from tests.support import cornjacket, unique

pytestmark = pytest.mark.e2e


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return cornjacket(
        "dlq",
        "--edge",
        f"127.0.0.1:{stack.settings.edge_port}",
        *args,
        env={"CJ_TOKEN": stack.admin_token},
    )


def test_dead_letter_replayed_over_http_and_listed_by_the_cli(
    stack: Stack, http: httpx.Client
) -> None:
    agg = unique("dlq-http")
    event = Event(
        str(uuid_utils.uuid7()),
        "sensor.reading",
        agg,
        datetime.now(UTC),
        datetime.now(UTC),
        {"value": 12.5, "unit": "C"},
    )
    with psycopg.connect(stack.postgres.url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO eventhandler.dlq (consumer, event_id, event_payload, error_message) "
            "VALUES ('event-handler', %s, %s, 'projection failed after retries: test') "
            "RETURNING dlq_id::text",
            (event.event_id, encode_event(event)),
        ).fetchone()
    assert row is not None
    dlq_id = row[0]

    listed = http.get("/api/v1/dlq", params={"filter.status": "pending", "limit": 100})
    assert listed.status_code == 200, listed.text
    assert dlq_id in [d["dlq_id"] for d in listed.json()["dead_letters"]]
    shown = http.get(f"/api/v1/dlq/{dlq_id}").json()
    assert (shown["event_type"], shown["aggregate_id"], shown["status"]) == (
        "sensor.reading",
        agg,
        "pending",
    )
    out = cli(stack, "list", "--status", "pending", "--limit", "100")
    assert out.returncode == 0 and dlq_id in out.stdout, out.stderr

    replayed = http.post("/api/v1/dlq:replay", json={"dlq_ids": [dlq_id]})
    assert replayed.status_code == 200 and replayed.json()["replayed"] == 1, replayed.text
    projection = http.get(f"/api/v1/projections/sensor_state/{agg}").json()
    assert projection["last_event_id"] == event.event_id
    assert http.get(f"/api/v1/dlq/{dlq_id}").json()["status"] == "replayed"
    out = cli(stack, "replay", dlq_id)
    assert out.returncode == 0 and "skipped" in out.stdout


def test_bad_dlq_requests_get_clear_errors(stack: Stack, http: httpx.Client) -> None:
    r = http.get("/api/v1/dlq", params={"filter.status": "bogus"})
    assert r.status_code == 400 and "not one of pending" in r.json()["message"]
    r = http.get(f"/api/v1/dlq/{uuid_utils.uuid7()}")
    assert r.status_code == 404
    out = cli(stack, "show", "not-a-uuid")
    assert out.returncode == 1 and "INVALID_ARGUMENT" in out.stderr and "not a UUID" in out.stderr
    out = cli(stack, "replay")
    assert out.returncode == 2 and "--all-pending" in out.stderr
