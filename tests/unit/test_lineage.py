from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.core.errors import InvalidInput, NotFound, Unavailable
from services.core.events import Event
from services.query.lineage import (
    AnomalyView,
    DeadLetterView,
    EffectView,
    LineageService,
    PublicationView,
    RecordView,
    WebhookView,
)

T = datetime(2026, 11, 27, tzinfo=UTC)
EID = "01a21cb8-86b8-725b-be08-6d14b059f202"
EVENT = Event(EID, "sensor.reading", "d1", T, T, {"value": 1})


class Records:
    def __init__(self, record: RecordView | None) -> None:
        self.value = record

    async def record(self, event_id: str) -> RecordView | None:
        return self.value


class Effects:
    def __init__(self, effects: list[EffectView], dead: list[DeadLetterView], down: bool = False):
        self.value = (effects, dead)
        self.down = down

    async def effects(self, event: Event) -> tuple[list[EffectView], list[DeadLetterView]]:
        if self.down:
            raise Unavailable("connection refused")
        return self.value


class Webhooks:
    def __init__(self, found: list[WebhookView] | None = None, down: bool = False) -> None:
        self.found = found or []
        self.down = down

    async def deliveries(self, event_id: str) -> list[WebhookView]:
        if self.down:
            raise Unavailable("connection refused")
        return self.found


async def test_a_waiting_event_shows_its_failed_attempts() -> None:
    svc = LineageService(
        Records(RecordView(EVENT, "outbox", retry_count=2, last_error="broker down")),
        Effects([EffectView("sensor_state", "d1", "pending")], []),
        Webhooks(),
    )
    _, hops = await svc.lineage(EID)
    assert [(h.stage, h.status) for h in hops] == [
        ("accepted", "done"),
        ("outbox", "pending"),
        ("published", "pending"),
        ("projection", "pending"),
    ]
    assert "2 failed attempt(s), last: broker down" in hops[1].detail


async def test_publications_dead_letters_and_an_unreachable_handler() -> None:
    stored = RecordView(
        EVENT, "stored", T, publications=[PublicationView("sensor-events", 2, 41, T)]
    )
    dead = [DeadLetterView("dl-1", "event-handler", "pending", "projection failed: bug", T)]
    hook = WebhookView("dl-9", "rule-1", "https://example.test/h", "failed", 6, "HTTP 500", T)
    _, hops = await LineageService(Records(stored), Effects([], dead), Webhooks([hook])).lineage(
        EID
    )
    assert ("published", "done", "sensor-events partition 2 offset 41") in [
        (h.stage, h.status, h.detail) for h in hops
    ]
    assert hops[-2].stage == "dead_letter" and hops[-2].status == "failed"
    assert hops[-1].stage == "webhook" and hops[-1].status == "failed"
    assert "after 6 attempt(s), last error: HTTP 500" in hops[-1].detail
    _, hops = await LineageService(
        Records(stored), Effects([], [], down=True), Webhooks(down=True)
    ).lineage(EID)
    assert [(h.stage, h.status) for h in hops[-2:]] == [
        ("projection", "unknown"),
        ("webhook", "unknown"),
    ]


async def test_unknown_and_malformed_ids() -> None:
    svc = LineageService(Records(None), Effects([], []), Webhooks())
    with pytest.raises(NotFound):
        await svc.lineage(EID)
    with pytest.raises(InvalidInput, match="not a UUID"):
        await svc.lineage("x")


class Anomalies:
    def __init__(self, found: list[AnomalyView] | None = None, down: bool = False) -> None:
        self.found = found or []
        self.down = down

    async def caused_by(self, event_id: str) -> list[AnomalyView]:
        if self.down:
            raise Unavailable("connection refused")
        return self.found


async def test_a_reading_names_the_anomaly_it_caused_and_the_anomaly_its_reading() -> None:
    aid = "01a21cb8-86b8-725b-be08-6d14b059f203"
    stored = RecordView(EVENT, "stored", stored_at=T)
    found = [AnomalyView(aid, "value", 0.93, 0.5, T), AnomalyView("", "humidity", 0.7, 0.5, T)]
    svc = LineageService(Records(stored), Effects([], []), Webhooks(), Anomalies(found))
    _, hops = await svc.lineage(EID)
    anomaly_hops = [(h.stage, h.status, h.detail) for h in hops if h.stage == "anomaly"]
    assert anomaly_hops == [
        ("anomaly", "done", f"ai.anomaly {aid} (value: score 0.930 >= 0.5)"),
        ("anomaly", "pending", "ai.anomaly not yet accepted (humidity: score 0.700 >= 0.5)"),
    ]
    anomaly = Event(
        aid, "ai.anomaly", "d1", T, T, {"source_event_id": EID, "metric": "value", "score": 0.93}
    )
    svc = LineageService(
        Records(RecordView(anomaly, "stored", stored_at=T)),
        Effects([], []),
        Webhooks(),
        Anomalies(),
    )
    _, hops = await svc.lineage(aid)
    [cause] = [h for h in hops if h.stage == "caused_by"]
    assert cause.detail == f"reading {EID} (value, score 0.93)"


async def test_an_unreachable_inference_service_is_an_unknown_hop() -> None:
    stored = RecordView(EVENT, "stored", stored_at=T)
    svc = LineageService(Records(stored), Effects([], []), Webhooks(), Anomalies(down=True))
    _, hops = await svc.lineage(EID)
    assert [(h.stage, h.status) for h in hops][-1] == ("anomaly", "unknown")
