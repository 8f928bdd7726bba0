"""One trace follows an event: HTTP through Envoy, ingestion, the relay, the handler and
the action orchestrator."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.cli.stack import Stack
from tests.support import eventually, unique

pytestmark = pytest.mark.e2e


def spans_of(stack: Stack, trace_id: str) -> list[dict[str, Any]]:
    found = []
    for path in Path(stack.settings.data_dir, "traces").glob("*.jsonl"):
        for line in path.read_text().splitlines():
            if f'"trace_id": "{trace_id}"' in line:
                found.append(json.loads(line))
    return found


def test_a_trace_runs_from_the_http_call_to_the_projection(
    stack: Stack, http: httpx.Client
) -> None:
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    agg = unique("traced")
    r = http.post(
        "/api/v1/events",
        json={
            "event_type": "sensor.reading",
            "aggregate_id": agg,
            "payload": {"value": 3, "unit": "C"},
        },
        headers={"traceparent": f"00-{trace_id}-{caller_span}-01"},
    )
    assert r.status_code == 202
    eventually(
        lambda: http.get(f"/api/v1/projections/sensor_state/{agg}").status_code == 200,
        what="projection",
    )

    def chain() -> dict[str, dict[str, Any]] | None:
        by_name = {s["name"]: s for s in spans_of(stack, trace_id)}
        wanted = ("IngestEvent", "publish sensor-events", "project sensor.reading", "match rules")
        return by_name if all(n in by_name for n in wanted) else None

    spans = eventually(chain, what="spans of ingestion, relay and handler")
    ingest, publish, project = (
        spans["IngestEvent"],
        spans["publish sensor-events"],
        spans["project sensor.reading"],
    )
    assert ingest["parent_span_id"] == caller_span and ingest["kind"] == "SERVER"
    assert publish["parent_span_id"] == ingest["span_id"] and publish["kind"] == "PRODUCER"
    assert project["parent_span_id"] == publish["span_id"] and project["kind"] == "CONSUMER"
    # The action orchestrator consumes the same message: its span hangs off the same parent.
    assert spans["match rules"]["parent_span_id"] == publish["span_id"]
    assert spans["match rules"]["service"] == "cornjacket-actions"
    assert {ingest["service"], publish["service"], project["service"]} == {
        "cornjacket-ingestion",
        "cornjacket-relay",
        "cornjacket-eventhandler",
    }
    # The event itself carries the trace: the lineage shows it.
    event_id = r.json()["event_id"]
    lineage = http.get(f"/api/v1/events/{event_id}/lineage").json()
    assert lineage["event"]["metadata"]["trace_id"] == trace_id
