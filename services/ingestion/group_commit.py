"""Group commit for the outbox: concurrent ingests share one transaction.

On 2 cores a commit per request is the bottleneck (each is a round trip and a WAL flush).
This Outbox decorator queues what concurrent callers append and writes it with one
``inner.append`` call; every caller still gets its answer only after the commit that holds
its rows. There is no artificial delay: while one flush is in flight the next callers queue,
so batches grow exactly as fast as load does.

The queue is bounded (``max_queued_rows``, events waiting for a flush): past it a caller is
answered Unavailable ("ingestion queue full", UNAVAILABLE/503) at once instead of piling up
in memory behind a slow database. A request is always admitted into an empty queue, so a
batch larger than the bound is not refused for good.

A caller cancelled (client gone, deadline passed) before the flush that would hold its
events started is dropped: it was never acknowledged, so nothing acknowledged is lost, and
not writing it keeps the client's retry from becoming a second event (without an idempotency
key) or a "duplicate" of an event it never saw accepted. A caller cancelled while its flush
runs cannot be taken back: its events may be stored although it got no answer
(at-least-once; its retry with the same idempotency key answers "duplicate"). See ADR 14.
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

    def __init__(
        self,
        inner: Outbox,
        *,
        max_rows: int = 1000,
        flushers: int = 2,
        max_queued_rows: int = 10_000,
    ) -> None:
        self._inner = inner
        self._max_rows = max_rows
        self._max_queued = max_queued_rows
        self._queued = 0  # rows of requests waiting for a flusher
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._tasks = [
            asyncio.create_task(self._flusher(), name=f"group-commit-{i}") for i in range(flushers)
        ]

    @property
    def queued_rows(self) -> int:
        """Events waiting for a flush (not counting those being committed)."""
        return self._queued

    async def append(
        self, items: Sequence[PendingEvent], *, retention_since: datetime
    ) -> list[Appended]:
        """Raises Unavailable when the queue is full or the database is down, InvalidInput
        when this caller's own events break the commit. Cancelling the caller before its
        flush started withdraws its events (see the module docstring)."""
        n = len(items)
        if self._queued and self._queued + n > self._max_queued:
            raise Unavailable(
                f"ingestion queue full: {self._queued} events are waiting for the database "
                f"(CJ_INGESTION_GROUP_COMMIT_MAX_QUEUED_ROWS={self._max_queued}); retry later"
            )
        req = _Request(items, retention_since)
        self._queued += n
        self._queue.put_nowait(req)
        return await req.done  # a cancelled caller cancels req.done: the flusher skips it

    async def _flusher(self) -> None:
        while True:
            req = await self._queue.get()
            taken, rows = 1, 0
            group: list[_Request] = []
            while True:
                self._queued -= len(req.items)
                # A request whose caller was cancelled while it waited is dropped here,
                # before the commit that would hold it starts.
                if not req.done.done():
                    group.append(req)
                    rows += len(req.items)
                if rows >= self._max_rows or self._queue.empty():
                    break
                req = self._queue.get_nowait()
                taken += 1
            try:
                if group:
                    await self._flush(group)
            finally:
                for _ in range(taken):
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
                    if not req.done.done():  # nothing was written; cancelled meanwhile: drop
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
