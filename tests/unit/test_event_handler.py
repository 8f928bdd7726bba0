from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from services.core.clock import FixedClock
from services.core.errors import InvalidInput, Unavailable
from services.core.events import Event
from services.eventhandler.projectors import ProjectionUpdate, Registry, default_registry
from services.eventhandler.service import DeadLetter, EventHandler
from services.infra.codec import encode_event
from tests.unit.fakes import MemoryProjectionStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def reading(eid: str, agg: str, value: float, seconds: int) -> Event:
    return Event(
        eid,
        "sensor.reading",
        agg,
        T0 + timedelta(seconds=seconds),
        T0,
        {"value": value, "unit": "C"},
    )


def handler(store: MemoryProjectionStore, registry: Registry | None = None) -> EventHandler:
    sleeps: list[float] = []
    return EventHandler(store, registry or default_registry(), FixedClock(T0), sleep=sleeps.append)


def items(*events: Event) -> list[tuple[Event | None, bytes, str]]:
    return [(e, encode_event(e), "") for e in events]


def test_newer_wins_and_older_is_ignored() -> None:
    store = MemoryProjectionStore()
    h = handler(store)
    h.handle(items(reading("e2", "d1", 2.0, 10)))
    h.handle(items(reading("e1", "d1", 1.0, 5)))  # older: no effect
    assert store.rows[("sensor_state", "d1")].state["value"] == 2.0
    h.handle(items(reading("e3", "d1", 3.0, 20)))
    assert store.rows[("sensor_state", "d1")].state["value"] == 3.0


def test_redelivery_changes_nothing() -> None:
    store = MemoryProjectionStore()
    h = handler(store)
    batch = items(reading("e1", "d1", 1.0, 5))
    h.handle(batch)
    h.handle(batch)
    assert len(store.rows) == 1 and store.dead == []


def test_unknown_types_are_skipped() -> None:
    store = MemoryProjectionStore()
    out = handler(store).handle(items(Event("e9", "order.placed", "o1", T0, T0, {})))
    assert out.skipped == 1 and store.rows == {}


def test_undecodable_message_goes_to_dlq() -> None:
    store = MemoryProjectionStore()
    out = handler(store).handle([(None, b"\xff", "not an EventEnvelope")])
    assert len(out.dead) == 1 and "undecodable" in store.dead[0].error


def test_failing_projector_is_retried_then_dead_lettered() -> None:
    calls: list[str] = []

    def broken(event: Event) -> list[object]:
        calls.append(event.event_id)
        raise KeyError("value")

    reg = Registry()
    reg.register("sensor.reading", broken)  # type: ignore[arg-type]
    store = MemoryProjectionStore()
    good = Event("e2", "user.login", "u1", T0, T0, {"user_id": "u1", "ip": "1.1.1.1"})
    reg.register("user.login", default_registry().projectors_for("user.login")[0])
    out = handler(store, reg).handle(items(reading("e1", "d1", 1.0, 1), good))
    assert calls == ["e1", "e1", "e1"]  # immediately, after 1 s, after 2 s
    assert [d.event_id for d in out.dead] == ["e1"]
    assert ("user_session", "u1") in store.rows


def test_database_down_raises_unavailable() -> None:
    store = MemoryProjectionStore()
    store.down = True
    with pytest.raises(Unavailable):
        handler(store).handle(items(reading("e1", "d1", 1.0, 1)))


class RefusingStore(MemoryProjectionStore):
    """Refuses, as PostgreSQL does, a batch holding a NUL in a string; nothing of it is kept."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def apply(
        self, updates: Sequence[ProjectionUpdate], dead: Sequence[DeadLetter], now: datetime
    ) -> int:
        self.calls += 1
        if any("\\u0000" in json.dumps([u.state, u.aggregate_id]) for u in updates):
            raise InvalidInput("a value cannot be stored: unsupported Unicode escape sequence")
        return super().apply(updates, dead, now)


def test_an_event_the_store_refuses_is_dead_lettered_and_the_rest_applied() -> None:
    store = RefusingStore()
    bad = Event("e2", "sensor.reading", "d1", T0 + timedelta(seconds=9), T0, {"unit": "C\x00"})
    out = handler(store).handle(
        [*items(reading("e1", "d1", 1.0, 1), bad, reading("e3", "d2", 3.0, 3)), (None, b"x", "?")]
    )
    assert store.rows[("sensor_state", "d1")].event_id == "e1"  # the refused one is not newest
    assert store.rows[("sensor_state", "d2")].event_id == "e3"
    assert [d.event_id for d in out.dead] == [None, "e2"] == [d.event_id for d in store.dead]
    assert store.dead[1].raw == encode_event(bad)
    assert store.dead[1].error.startswith("the database refused a value of this event: ")
    assert out.updated == 2


def test_a_batch_the_store_accepts_is_written_in_one_call() -> None:
    store = RefusingStore()
    out = handler(store).handle(items(reading("e1", "d1", 1.0, 1)))
    assert out.dead == [] and store.calls == 1
