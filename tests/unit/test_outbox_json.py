"""The outbox row text: a payload already encoded by validation is spliced in, not re-encoded."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from services.core.events import Event, Metadata
from services.ingestion.outbox_store import _json_array
from services.ingestion.ports import PendingEvent

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_spliced_payload_gives_the_same_rows_as_encoding_the_event() -> None:
    payload = {"value": 1.5, "unit": "°C", "nested": {"a": [1, None, 'x"y\\z']}}
    event = Event("e-1", "sensor.reading", "dev-1", T0, T0, payload, Metadata(trace_id="t"))
    encoded = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    rows = json.loads(_json_array([PendingEvent(event, "", encoded), PendingEvent(event)]))
    assert rows == [event.to_dict(), event.to_dict()]
