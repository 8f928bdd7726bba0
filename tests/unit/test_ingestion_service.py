from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from services.core.clock import FixedClock
from services.core.errors import InvalidInput, Unavailable
from services.ingestion.service import IngestionService
from services.ingestion.validation import IngestCommand
from tests.unit.fakes import MemoryOutbox

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def make(outbox: MemoryOutbox, clock: FixedClock | None = None) -> IngestionService:
    counter = itertools.count(1)
    return IngestionService(
        outbox,
        clock or FixedClock(NOW),
        lambda: f"00000000-0000-7000-8000-{next(counter):012d}",
        max_payload_bytes=1024,
        idempotency_retention=60,
    )


def reading(agg: str = "d1", key: str = "", value: float = 1.0) -> IngestCommand:
    return IngestCommand(
        "sensor.reading", agg, {"value": value, "unit": "C"}, idempotency_key=key, source="http"
    )


async def test_accept_stamps_ids_and_clock() -> None:
    outbox = MemoryOutbox()
    result = await make(outbox).ingest(reading())
    assert result.status == "accepted"
    (ev,) = outbox.rows
    assert ev.event_id == result.event_id
    assert ev.ingested_at == NOW and ev.event_time == NOW
    assert ev.metadata.source == "http"


async def test_caller_event_time_is_kept() -> None:
    outbox = MemoryOutbox()
    t = NOW - timedelta(hours=1)
    cmd = IngestCommand("sensor.reading", "d1", {"value": 1, "unit": "C"}, event_time=t)
    await make(outbox).ingest(cmd)
    assert outbox.rows[0].event_time == t and outbox.rows[0].ingested_at == NOW


async def test_invalid_input_writes_nothing() -> None:
    outbox = MemoryOutbox()
    with pytest.raises(InvalidInput):
        await make(outbox).ingest(IngestCommand("", "d1", {}))
    assert outbox.rows == []


async def test_idempotency_key_returns_original_within_window() -> None:
    outbox = MemoryOutbox()
    clock = FixedClock(NOW)
    svc = make(outbox, clock)
    first = await svc.ingest(reading(key="k"))
    again = await svc.ingest(reading(key="k"))
    assert again.event_id == first.event_id and again.status == "duplicate"
    assert len(outbox.rows) == 1
    clock.advance(timedelta(seconds=61))
    later = await svc.ingest(reading(key="k"))
    assert later.status == "accepted" and later.event_id != first.event_id


async def test_batch_validates_each_event_on_its_own() -> None:
    outbox = MemoryOutbox()
    results = await make(outbox).ingest_many(
        [
            reading("a"),
            IngestCommand("sensor.reading", "", {}),
            reading("b", key="k"),
            reading("c", key="k"),
        ]
    )
    assert [r.status for r in results] == ["accepted", "rejected", "accepted", "duplicate"]
    assert results[1].error == "aggregate_id is required"
    assert results[3].event_id == results[2].event_id
    assert [e.aggregate_id for e in outbox.rows] == ["a", "b"]


async def test_batch_limits() -> None:
    svc = make(MemoryOutbox())
    with pytest.raises(InvalidInput, match="at least one"):
        await svc.ingest_many([])
    with pytest.raises(InvalidInput, match="at most 500"):
        await svc.ingest_many([reading()] * 501)


async def test_database_down_is_unavailable_not_accepted() -> None:
    outbox = MemoryOutbox()
    outbox.down = True
    with pytest.raises(Unavailable):
        await make(outbox).ingest(reading())
