from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.core.errors import Unavailable
from services.core.events import Event
from services.ingestion.relay import Relay
from tests.unit.fakes import MemoryPublisher, MemoryRelayStore

T = datetime(2026, 1, 1, tzinfo=UTC)


def ev(n: int) -> Event:
    return Event(f"id-{n}", "sensor.reading", f"d{n}", T, T, {"value": n, "unit": "C"})


def relay(store: MemoryRelayStore, pub: MemoryPublisher, batch: int = 10) -> Relay:
    return Relay(store, pub, batch_size=batch, max_retries=2, worker_count=1, poll_interval=1)


async def test_step_appends_publishes_and_deletes() -> None:
    store, pub = MemoryRelayStore(), MemoryPublisher()
    for n in range(3):
        store.add(ev(n))
    assert await relay(store, pub).step() == 3
    assert [e.event_id for e in pub.sent] == ["id-0", "id-1", "id-2"]
    assert set(store.event_store) == {"id-0", "id-1", "id-2"}
    assert store.outbox == {}


async def test_publish_failure_keeps_rows_and_counts_retry() -> None:
    store, pub = MemoryRelayStore(), MemoryPublisher()
    store.add(ev(1))
    pub.down = True
    with pytest.raises(Unavailable):
        await relay(store, pub).step()
    assert store.outbox["id-1"].retry_count == 1
    pub.down = False
    assert await relay(store, pub).step() == 1
    assert store.outbox == {} and [e.event_id for e in pub.sent] == ["id-1"]


async def test_unreadable_row_stays_and_does_not_block_others() -> None:
    store, pub = MemoryRelayStore(), MemoryPublisher()
    store.add(None, outbox_id="junk")
    store.add(ev(1))
    assert await relay(store, pub).step() == 1
    assert list(store.outbox) == ["junk"] and store.outbox["junk"].retry_count == 1


async def test_rows_past_max_retries_go_last() -> None:
    store, pub = MemoryRelayStore(), MemoryPublisher()
    store.add(ev(1))
    store.outbox["id-1"] = store.outbox["id-1"].__class__("id-1", ev(1), 5)
    store.add(ev(2))
    await relay(store, pub, batch=1).step()
    assert [e.event_id for e in pub.sent] == ["id-2"]
