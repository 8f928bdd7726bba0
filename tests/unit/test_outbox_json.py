"""The outbox row text: one JSON object per event, as Event.to_dict gives it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from services.core.events import Event, Metadata
from services.ingestion.outbox_store import _json_array
from services.ingestion.ports import PendingEvent

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_outbox_rows_are_the_events_dicts() -> None:
    payload = {"value": 1.5, "unit": "°C", "nested": {"a": [1, None, 'x"y\\z']}}
    event = Event("e-1", "sensor.reading", "dev-1", T0, T0, payload, Metadata(trace_id="t"))
    rows = json.loads(_json_array([PendingEvent(event, "key"), PendingEvent(event)]))
    assert rows == [event.to_dict(), event.to_dict()]
