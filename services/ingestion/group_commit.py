"""Group commit for the outbox: concurrent ingests share one transaction.

On 2 cores a commit per request is the bottleneck (each is a round trip and a WAL flush).
This Outbox decorator queues what concurrent callers append and writes it with one
``inner.append`` call; every caller still gets its answer only after the commit that holds
its rows. There is no artificial delay: while one flush is in flight the next callers queue,
so batches grow exactly as fast as load does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from services.core.errors import Unavailable
from services.ingestion.ports import Appended, Outbox, PendingEvent


@dataclass
class _Request:
    items: Sequence[PendingEvent]
    retention_since: datetime
    done: asyncio.Future[list[Appended]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class GroupCommitOutbox:
    """Safe for concurrent use from one event loop. ``close()`` flushes what is queued."""

    def __init__(self, inner: Outbox, *, max_rows: int = 1000, flushers: int = 2) -> None:
        self._inner = inner
        self._max_rows = max_rows
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._tasks = [
            asyncio.create_task(self._flusher(), name=f"group-commit-{i}") for i in range(flushers)
        ]

    async def append(
        self, items: Sequence[PendingEvent], *, retention_since: datetime
    ) -> list[Appended]:
        req = _Request(items, retention_since)
        await self._queue.put(req)
        return await req.done

    async def _flusher(self) -> None:
        while True:
            first = await self._queue.get()
            group = [first]
            rows = len(first.items)
            while rows < self._max_rows and not self._queue.empty():
                nxt = self._queue.get_nowait()
                group.append(nxt)
                rows += len(nxt.items)
            try:
                await self._flush(group)
            finally:
                for _ in group:
                    self._queue.task_done()

    async def _flush(self, group: list[_Request]) -> None:
        items = [item for req in group for item in req.items]
        # The widest retention window keeps the idempotency check conservative for everyone.
        since = min(req.retention_since for req in group)
        try:
            results = await self._inner.append(items, retention_since=since)
        except Exception as e:
            if len(group) > 1 and not isinstance(e, Unavailable):
                # Something in one caller's events broke the shared commit: commit each
                # caller on its own, so only the one that causes it gets the error.
                for req in group:
                    await self._flush([req])
                return
            for req in group:  # the database is down: everyone learns the same failure
                if not req.done.done():
                    req.done.set_exception(e)
            return
        pos = 0
        for req in group:
            n = len(req.items)
            if not req.done.done():
                req.done.set_result(results[pos : pos + n])
            pos += n

    async def close(self) -> None:
        await self._queue.join()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
