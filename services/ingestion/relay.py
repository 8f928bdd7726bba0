"""Outbox relay core: move committed outbox rows to the event store and the bus.

Per batch, inside one database transaction: claim rows (FOR UPDATE SKIP LOCKED, so any
number of relays can run and never hold the same row), append them to the event store
(idempotent on event_id), publish and wait for the broker's ack, delete the rows, commit.
If anything fails the transaction rolls back, the rows stay and their retry_count grows.
A crash after the publish but before the commit republishes the batch later: delivery is
at-least-once and consumers are idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from services.core.aio import wait_event
from services.core.errors import Unavailable
from services.core.events import Event, Publication

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    outbox_id: str
    event: Event | None  # None when the stored row cannot be read as an event
    retry_count: int
    error: str = ""


class ClaimedBatch(Protocol):
    """Rows locked by one open transaction; committed when the context exits cleanly."""

    @property
    def rows(self) -> Sequence[OutboxRow]: ...

    async def append_to_event_store(self, events: Sequence[Event]) -> None: ...

    async def delete(self, outbox_ids: Sequence[str]) -> None: ...

    async def record_publications(self, publications: Sequence[Publication]) -> None: ...

    async def mark_failed(self, outbox_ids: Sequence[str], error: str) -> None:
        """Count a failed attempt on these rows (they stay in the outbox)."""
        ...


class RelayStore(Protocol):
    def claim(self, limit: int, max_retries: int) -> AbstractAsyncContextManager[ClaimedBatch]:
        """Lock up to ``limit`` rows, oldest first; rows that failed ``max_retries`` times
        go to the back so they cannot block healthy ones. Raises Unavailable."""
        ...


class Publisher(Protocol):
    """Publishes events to the bus. Safe for concurrent use.

    ``publish`` returns once the broker acknowledged every message (acks=all), with where
    each went; it raises Unavailable if any message was not acknowledged (some may have
    been: at-least-once).
    """

    async def publish(self, events: Sequence[Event]) -> Sequence[Publication]: ...


class Relay:
    def __init__(
        self,
        store: RelayStore,
        publisher: Publisher,
        *,
        batch_size: int,
        max_retries: int,
        worker_count: int,
        poll_interval: float,
        linger: float = 0.0,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._batch_size = batch_size
        self._max_retries = max_retries
        self._workers = worker_count
        self._poll_interval = poll_interval
        self._linger = linger
        # Wake-up tokens: one notification wakes one idle worker, not all of them (four
        # workers racing to claim the same few rows costs more than it relays).
        self._wake: asyncio.Queue[None] = asyncio.Queue()
        self._lingering = 0  # workers waiting out the linger before they claim
        self._stopping = asyncio.Event()
        self.published = 0
        self.healthy = True

    def notify(self) -> None:
        """Called when the database announces new outbox rows (LISTEN/NOTIFY)."""
        # A worker lingering before its claim will take these rows too: waking another one
        # would only split the batch (at 1,000 single events/s, hundreds of commits a second).
        if not self._lingering:
            self._wake_one()

    def _wake_one(self) -> None:
        if self._wake.empty():
            self._wake.put_nowait(None)

    def stop(self) -> None:
        self._stopping.set()
        for _ in range(self._workers):
            self._wake.put_nowait(None)

    async def step(self) -> int:
        """Relay one batch; return how many rows it moved. Raises Unavailable."""
        publish_error: Unavailable | None = None
        async with self._store.claim(self._batch_size, self._max_retries) as batch:
            if not batch.rows:
                return 0
            good = [r for r in batch.rows if r.event is not None]
            bad = [r for r in batch.rows if r.event is None]
            if bad:
                for r in bad:
                    # Logged on the first failure and when it reaches max_retries, not on
                    # every claim: the row stays for an operator and would flood the log.
                    if r.retry_count in (0, self._max_retries - 1):
                        log.error(
                            "outbox row cannot be read as an event; it stays in the outbox",
                            extra={"outbox_id": r.outbox_id, "retry_count": r.retry_count + 1},
                        )
                await batch.mark_failed([r.outbox_id for r in bad], bad[0].error)
            events = [r.event for r in good if r.event is not None]
            if events:
                await batch.append_to_event_store(events)
                try:
                    publications = await self._publisher.publish(events)
                except Unavailable as e:
                    # Keep the rows (no delete) and count the attempt; the event store
                    # append may commit, it is idempotent on event_id.
                    await batch.mark_failed([r.outbox_id for r in good], str(e))
                    publish_error = e
                else:
                    await batch.record_publications(publications)
                    await batch.delete([r.outbox_id for r in good])
        if publish_error is not None:
            raise publish_error
        self.published += len(good)
        return len(good)

    async def _worker(self, n: int) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                moved = await self.step()
                self.healthy = True
                backoff = 0.1
            except Unavailable as e:
                if self.healthy:
                    log.warning("relay cannot make progress; will retry", extra={"error": str(e)})
                self.healthy = False
                await self._sleep(backoff)
                backoff = min(backoff * 2, self._poll_interval)
                continue
            if moved >= self._batch_size:
                self._wake_one()  # a backlog: bring another worker in, and keep draining
                continue
            # Less than a full batch: the outbox was drained when we claimed. Rows inserted
            # since then sent a NOTIFY (a wake-up token is waiting), so claiming again right
            # away would mostly find nothing: sleep until NOTIFY wakes us or the watchdog
            # interval passes (a lost notification, or the listener was reconnecting).
            try:
                await asyncio.wait_for(self._wake.get(), timeout=self._poll_interval)
            except TimeoutError:
                continue
            if self._linger:
                # Let the rows of concurrent ingests that are committing now join the batch.
                self._lingering += 1
                try:
                    await self._sleep(self._linger)
                finally:
                    self._lingering -= 1

    async def _sleep(self, seconds: float) -> None:
        await wait_event(self._stopping, seconds)

    async def run(self) -> None:
        """Run the workers until stop(); each finishes its current batch first."""
        log.info("outbox relay started", extra={"workers": self._workers})
        await asyncio.gather(*(self._worker(i) for i in range(self._workers)))
        log.info("outbox relay stopped", extra={"published": self.published})
