from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from services.core.errors import Unavailable
from services.core.events import Event
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
