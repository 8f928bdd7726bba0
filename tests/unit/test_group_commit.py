from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import psycopg
import pytest

from services.core.errors import Unavailable
from services.core.events import Event
from services.infra.postgres import translate_errors
from services.ingestion.group_commit import GroupCommitOutbox
from services.ingestion.ports import Appended, PendingEvent
from tests.unit.fakes import MemoryOutbox

T = datetime(2026, 1, 1, tzinfo=UTC)


def pending(n: int, key: str = "") -> PendingEvent:
    return PendingEvent(
        Event(f"id-{n}", "sensor.reading", "d", T, T, {"value": n, "unit": "C"}), key
    )


class CountingOutbox(MemoryOutbox):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    async def append(
        self, items: Sequence[PendingEvent], *, retention_since: datetime
    ) -> list[Appended]:
        self.calls.append(len(items))
        await asyncio.sleep(0.01)  # a commit takes time: later callers queue meanwhile
        return await super().append(items, retention_since=retention_since)


async def test_concurrent_callers_share_commits_and_get_their_own_answers() -> None:
    inner = CountingOutbox()
    outbox = GroupCommitOutbox(inner, max_rows=1000, flushers=1)
    results = await asyncio.gather(
        *(outbox.append([pending(i)], retention_since=T) for i in range(50))
    )
    await outbox.close()
    assert [r[0].event_id for r in results] == [f"id-{i}" for i in range(50)]
    assert sum(inner.calls) == 50 and len(inner.calls) < 50  # coalesced
    assert len(inner.rows) == 50


async def test_duplicate_keys_across_callers_in_one_group() -> None:
    inner = CountingOutbox()
    outbox = GroupCommitOutbox(inner, flushers=1)
    a, b = await asyncio.gather(
        outbox.append([pending(1, "k")], retention_since=T),
        outbox.append([pending(2, "k")], retention_since=T),
    )
    await outbox.close()
    assert a[0].event_id == b[0].event_id == "id-1" and b[0].duplicate


async def test_failure_reaches_every_caller_of_the_group() -> None:
    inner = CountingOutbox()
    inner.down = True
    outbox = GroupCommitOutbox(inner, flushers=1)
    results = await asyncio.gather(
        *(outbox.append([pending(i)], retention_since=T) for i in range(5)), return_exceptions=True
    )
    await outbox.close()
    assert all(isinstance(r, Unavailable) for r in results)


async def test_max_rows_bounds_a_group() -> None:
    inner = CountingOutbox()
    outbox = GroupCommitOutbox(inner, max_rows=10, flushers=1)
    await asyncio.gather(*(outbox.append([pending(i)], retention_since=T) for i in range(40)))
    await outbox.close()
    assert max(inner.calls) <= 10


class PickyOutbox(CountingOutbox):
    """Fails a whole commit when one of its rows is 'poison' (as a database would)."""

    async def append(
        self, items: Sequence[PendingEvent], *, retention_since: datetime
    ) -> list[Appended]:
        if any(i.event.payload.get("value") == -1 for i in items):
            self.calls.append(len(items))
            raise ValueError("row 'poison' cannot be stored")
        return await super().append(items, retention_since=retention_since)


async def test_one_bad_caller_does_not_fail_the_others_sharing_its_commit() -> None:
    inner = PickyOutbox()
    outbox = GroupCommitOutbox(inner, max_rows=1000, flushers=1)
    results = await asyncio.gather(
        *(outbox.append([pending(-1 if i == 3 else i)], retention_since=T) for i in range(10)),
        return_exceptions=True,
    )
    failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
    assert failed == [3]
    assert len(inner.rows) == 9
    await outbox.close()


class LimitedOutbox(CountingOutbox):
    """Raises what PostgreSQL raises when one statement's JSON is past a size limit (the
    jsonb array of a whole group), through the adapter's real error translation."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    async def append(
        self, items: Sequence[PendingEvent], *, retention_since: datetime
    ) -> list[Appended]:
        size = sum(len(str(i.event.payload)) for i in items)
        async with translate_errors("writing the outbox"):
            if size > self.limit:
                self.calls.append(len(items))
                raise psycopg.errors.ProgramLimitExceeded(
                    f"total size of jsonb array elements exceeds the maximum of {self.limit} bytes"
                )
        return await super().append(items, retention_since=retention_since)


def sized(n: int, size: int) -> PendingEvent:
    return PendingEvent(Event(f"id-{n}", "a.b", "d", T, T, {"s": "x" * size}))


async def test_a_group_past_a_database_limit_is_split_and_only_the_event_past_it_fails() -> None:
    """A program limit is a data error of that group, not an outage: every caller is
    stored on its own, and the one event that is past the limit alone gets InvalidInput."""
    inner = LimitedOutbox(limit=1000)
    outbox = GroupCommitOutbox(inner, max_rows=1000, flushers=1)
    sizes = [300, 300, 300, 5000, 300]  # together past the limit; only [3] alone
    results = await asyncio.gather(
        *(outbox.append([sized(i, s)], retention_since=T) for i, s in enumerate(sizes)),
        return_exceptions=True,
    )
    await outbox.close()
    assert [type(r).__name__ for r in results] == ["list"] * 3 + ["InvalidInput", "list"]
    assert "exceeds the maximum of 1000 bytes" in str(results[3])
    assert sorted(e.event_id for e in inner.rows) == ["id-0", "id-1", "id-2", "id-4"]


class GatedOutbox(MemoryOutbox):
    """Each commit announces that it started and waits until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.started = asyncio.Event()
        self.gate = asyncio.Event()

    async def append(
        self, items: Sequence[PendingEvent], *, retention_since: datetime
    ) -> list[Appended]:
        self.started.set()
        await self.gate.wait()
        return await super().append(items, retention_since=retention_since)


async def test_a_full_queue_answers_unavailable_and_queued_callers_are_still_stored() -> None:
    inner = GatedOutbox()
    outbox = GroupCommitOutbox(inner, flushers=1, max_queued_rows=3)
    first = asyncio.create_task(outbox.append([pending(0)], retention_since=T))
    await inner.started.wait()  # its commit is in flight: it no longer counts as queued
    queued = [
        asyncio.create_task(outbox.append([pending(n)], retention_since=T)) for n in (1, 2, 3)
    ]
    await asyncio.sleep(0)  # let them queue
    assert outbox.queued_rows == 3
    with pytest.raises(Unavailable, match="ingestion queue full"):
        await outbox.append([pending(4)], retention_since=T)
    inner.gate.set()
    await asyncio.gather(first, *queued)
    await outbox.close()
    assert [e.event_id for e in inner.rows] == ["id-0", "id-1", "id-2", "id-3"]


async def test_a_batch_larger_than_the_bound_still_fits_an_empty_queue() -> None:
    inner = GatedOutbox()
    inner.gate.set()
    outbox = GroupCommitOutbox(inner, flushers=1, max_queued_rows=3)
    result = await outbox.append([pending(n) for n in range(5)], retention_since=T)
    await outbox.close()
    assert len(result) == 5 and len(inner.rows) == 5


async def test_a_caller_cancelled_before_its_flush_started_is_not_written() -> None:
    """It was never acknowledged, so dropping it loses nothing acknowledged; writing it
    would only make the client's retry a duplicate (or, without a key, a second event)."""
    inner = GatedOutbox()
    outbox = GroupCommitOutbox(inner, flushers=1)
    first = asyncio.create_task(outbox.append([pending(0)], retention_since=T))
    await inner.started.wait()
    gone = asyncio.create_task(outbox.append([pending(1)], retention_since=T))
    kept = asyncio.create_task(outbox.append([pending(2)], retention_since=T))
    await asyncio.sleep(0)  # both queued behind the commit in flight
    assert outbox.queued_rows == 2
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    inner.gate.set()
    await asyncio.gather(first, kept)
    await outbox.close()
    assert [e.event_id for e in inner.rows] == ["id-0", "id-2"]


async def test_a_caller_cancelled_while_its_flush_runs_is_written() -> None:
    """Once its commit started the event may be stored: at-least-once for that caller."""
    inner = GatedOutbox()
    outbox = GroupCommitOutbox(inner, flushers=1)
    task = asyncio.create_task(outbox.append([pending(0)], retention_since=T))
    await inner.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    inner.gate.set()
    await outbox.close()
    assert [e.event_id for e in inner.rows] == ["id-0"]
