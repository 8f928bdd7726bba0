"""Outbox relay core: move committed outbox rows to the event store and the bus.

Per batch, inside one database transaction: claim rows, append them to the event store
(idempotent on event_id), publish and wait for the broker's ack, delete the rows, commit.
If the publish fails the rows stay and their retry_count grows. A crash after the publish
but before the commit republishes the batch later: delivery is at-least-once and consumers
are idempotent.

One aggregate's events reach the bus in outbox order (ADR 18): the outbox is split into
``SLOTS`` slots by a hash of the aggregate id (``slot_of``), a claim owns its slots for its
transaction (no other worker or replica claims their rows meanwhile) and takes each slot's
rows oldest first, so a failed batch holds back the later rows of its slots. A claim owns
only as many slots as its batch needs, so up to ``SLOTS`` batches (of all workers and
replicas together) run at once.

An event the bus refuses for good (the producer refuses it alone: too large, invalid) is a
poison row of its own: in the same transaction its row is set aside at once
(``ingestion.outbox_poison``), logged and counted, while its batch-mates are recorded and
deleted as usual, so it neither holds them back nor makes them be sent again. It stays in
the event store: it was accepted. It is never sent again after its batch-mates: a refusal
always concerns the event alone, because ingestion refuses to start unless every topic's
limit covers the producer's record batches (``ensure_topics``).

A message that is not acknowledged (a broker or partition outage, a timeout) is never set
aside: it is kept, counted and retried. Only its aggregate is held back: the acknowledged
rows of every aggregate with no unacknowledged row earlier in the batch are recorded and
deleted; the failed row and its aggregate's later rows stay (ADR 18, "Partial failures").
The whole publish phase is bounded (``publish_timeout``, under the database's bound on an
idle batch transaction): past it the batch is rolled back and its rows stay.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from services.core.aio import wait_event
from services.core.errors import InvalidInput, Unavailable
from services.core.events import Event, PartlyPublished, Publication

log = logging.getLogger(__name__)

# The outbox's slots; migration 009 computes the same slot for every row (its generated
# column), so this number is part of the schema.
SLOTS = 64


def slot_of(aggregate_id: str) -> int:
    """The outbox slot of an aggregate: the first two bytes of the SHA-256 of its id (UTF-8),
    mod SLOTS. Stable across processes, versions and machines (not Python's hash())."""
    digest = hashlib.sha256(aggregate_id.encode()).digest()
    return int.from_bytes(digest[:2], "big") % SLOTS


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

    async def set_aside(self, rows: Sequence[tuple[str, str]]) -> None:
        """Move these rows (outbox_id, why) out of the outbox into the poison rows, for an
        operator: they can never be published as they are."""
        ...


class RelayStore(Protocol):
    def claim(self, limit: int) -> AbstractAsyncContextManager[ClaimedBatch]:
        """Own the slots that hold the oldest waiting rows, only as many as ``limit`` rows
        need (no other claim gets them until this one ends), and return up to ``limit`` of
        their rows, each slot's oldest first. Raises Unavailable."""
        ...


class Publisher(Protocol):
    """Publishes events to the bus. Safe for concurrent use.

    ``publish`` returns once every message is settled, one entry per event in order: where
    it went once the broker acknowledged it (acks=all), or an ``InvalidInput`` saying why
    the bus refuses that one message, alone, for good (too large, invalid; retrying cannot
    help). If any message failed otherwise (the broker or its partition unreachable, a
    timeout) it raises ``PartlyPublished`` with the entry of each message (an Unavailable
    for those not acknowledged), or Unavailable when it cannot tell.
    """

    async def publish(self, events: Sequence[Event]) -> Sequence[Publication | InvalidInput]: ...


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
        publish_timeout: float,
        linger: float = 0.0,
    ) -> None:
        # The bound on one batch's publish phase (kafka.RELAY_PUBLISH_TIMEOUT in production).
        self._publish_timeout = publish_timeout
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
        self.poisoned = 0  # rows set aside because the bus refuses their event for good
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
        """Relay one batch; return how many rows left the outbox (published, or set aside
        as poison rows). Raises Unavailable."""
        publish_error: Unavailable | None = None
        published, poisoned = 0, list[tuple[OutboxRow, str]]()
        async with self._store.claim(self._batch_size) as batch:
            if not batch.rows:
                return 0
            good = [r for r in batch.rows if r.event is not None]
            bad = [r for r in batch.rows if r.event is None]
            if bad:
                # An unreadable row holds nothing back (it has no event to order); once it
                # has failed max_retries times it is set aside for an operator.
                done = [r for r in bad if r.retry_count + 1 >= self._max_retries]
                again = [r for r in bad if r.retry_count + 1 < self._max_retries]
                for r in again:
                    if r.retry_count == 0:
                        log.error(
                            "outbox row cannot be read as an event; it is retried, then set "
                            "aside in ingestion.outbox_poison",
                            extra={"outbox_id": r.outbox_id, "error": r.error},
                        )
                if again:
                    await batch.mark_failed([r.outbox_id for r in again], again[0].error)
                if done:
                    await batch.set_aside([(r.outbox_id, r.error) for r in done])
                    poisoned += [(r, r.error) for r in done]
            events = [r.event for r in good if r.event is not None]
            if events:
                await batch.append_to_event_store(events)
                results, publish_error = await self._publish(events)
                publications: list[Publication] = []
                sent: list[str] = []
                refused: list[tuple[OutboxRow, str]] = []
                kept: list[str] = []
                held: set[str] = set()  # aggregates with an unacknowledged row in this batch
                for row, result in zip(good, results, strict=True):
                    aggregate = row.event.aggregate_id if row.event is not None else ""
                    if aggregate in held or isinstance(result, Unavailable):
                        # Order is per aggregate: from its first unacknowledged row on, its
                        # rows stay (acknowledged ones are sent again after it: duplicates,
                        # never a later event alone ahead of an earlier one).
                        held.add(aggregate)
                        kept.append(row.outbox_id)
                    elif isinstance(result, InvalidInput):
                        refused.append((row, str(result)))
                    else:
                        publications.append(result)
                        sent.append(row.outbox_id)
                if kept:
                    await batch.mark_failed(kept, str(publish_error or "not acknowledged"))
                if refused:
                    await batch.set_aside([(row.outbox_id, why) for row, why in refused])
                if sent:
                    await batch.record_publications(publications)
                    await batch.delete(sent)
                published = len(sent)
                poisoned += refused
        for row, why in poisoned:  # committed: the rows are out of the outbox now
            log.error(
                "outbox row set aside in ingestion.outbox_poison: "
                + (
                    "its event is refused by the bus for good; its batch went on"
                    if row.event
                    else "it cannot be read as an event"
                ),
                extra={
                    "outbox_id": row.outbox_id,
                    "event_type": row.event.event_type if row.event else "",
                    "error": why,
                },
            )
        self.published += published
        self.poisoned += len(poisoned)
        if publish_error is not None:
            raise publish_error
        return published + len(poisoned)

    async def _publish(
        self, events: list[Event]
    ) -> tuple[list[Publication | InvalidInput | Unavailable], Unavailable | None]:
        """One entry per event, and the error to report if any was not acknowledged. Past
        ``publish_timeout`` raises Unavailable: the caller's batch rolls back (nothing is
        deleted, the rows stay) while it still owns its slots."""
        try:
            async with asyncio.timeout(self._publish_timeout):
                return list(await self._publisher.publish(events)), None
        except PartlyPublished as e:
            return list(e.results), e
        except Unavailable as e:
            return [e] * len(events), e
        except TimeoutError:
            raise Unavailable(
                f"publishing {len(events)} event(s) took longer than {self._publish_timeout}s; "
                "the batch is rolled back and its rows stay"
            ) from None

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
