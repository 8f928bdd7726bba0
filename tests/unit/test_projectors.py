from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.core.events import Event
from services.eventhandler.projectors import (
    ProjectionUpdate,
    Registry,
    default_registry,
    newest_per_key,
    sensor_state,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def upd(agg: str, seconds: int, eid: str) -> ProjectionUpdate:
    return ProjectionUpdate(
        "sensor_state", agg, {"s": seconds}, eid, T0 + timedelta(seconds=seconds)
    )


def test_newest_per_key_keeps_latest_event_time() -> None:
    result = newest_per_key([upd("a", 2, "id2"), upd("a", 5, "id1"), upd("a", 3, "id3")])
    assert [(u.aggregate_id, u.state) for u in result] == [("a", {"s": 5})]


def test_newest_per_key_breaks_time_ties_by_event_id() -> None:
    result = newest_per_key([upd("a", 1, "0002"), upd("a", 1, "0001")])
    assert result[0].event_id == "0002"


def test_newest_per_key_keeps_each_aggregate() -> None:
    result = newest_per_key([upd("a", 1, "x"), upd("b", 1, "y")])
    assert sorted(u.aggregate_id for u in result) == ["a", "b"]


def test_registry_exact_and_prefix() -> None:
    reg = Registry()
    reg.register("sensor.reading", sensor_state)
    reg.register("sensor.*", sensor_state)
    assert len(reg.projectors_for("sensor.reading")) == 2
    assert len(reg.projectors_for("sensor.battery")) == 1
    assert reg.projectors_for("user.login") == []


def test_default_registry_projects_catalog_types_only() -> None:
    reg = default_registry()
    ev = Event("id", "user.login", "u-1", T0, T0, {"user_id": "u-1", "ip": "1.2.3.4"})
    (update,) = [u for p in reg.projectors_for(ev.event_type) for u in p(ev)]
    assert update.projection_type == "user_session"
    assert update.state == {"user_id": "u-1", "ip": "1.2.3.4", "last_login_at": T0.isoformat()}
    assert reg.projectors_for("system.alert") == []


def test_an_ai_anomaly_turns_device_health_anomalous() -> None:
    reg = default_registry()
    payload = {
        "source_event_id": "src-1",
        "device": "dev-1",
        "metric": "temp",
        "score": 0.93,
        "device_anomalies_24h": 3,
    }
    ev = Event("a-1", "ai.anomaly", "dev-1", T0, T0, payload)
    (update,) = [u for p in reg.projectors_for(ev.event_type) for u in p(ev)]
    assert (update.projection_type, update.aggregate_id) == ("device_health", "dev-1")
    assert update.state == {
        "status": "anomalous",
        "last_score": 0.93,
        "last_anomaly_at": T0.isoformat(),
        "anomalies_24h": 3,
        "last_metric": "temp",
        "last_source_event_id": "src-1",
    }
