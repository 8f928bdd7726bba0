"""In-memory fakes of the ports, for unit tests of the core logic."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

from services.core.errors import InvalidInput, Unavailable
from services.core.events import Event, PartlyPublished, Publication
from services.eventhandler.projectors import ProjectionUpdate
from services.eventhandler.service import DeadLetter
from services.ingestion.ports import Appended, PendingEvent
from services.ingestion.relay import ClaimedBatch, OutboxRow


class MemoryOutbox:
    def __init__(self) -> None:
        self.rows: list[Event] = []
        self.keys: dict[tuple[str, str], tuple[str, datetime]] = {}
        self.down = False

    async def append(
        self, items: Sequence[PendingEvent], *, retention_since: datetime
    ) -> list[Appended]:
        if self.down:
            raise Unavailable("database unavailable while writing the outbox")
        out: list[Appended] = []
        for item in items:
            if item.idempotency_key:
                seen = self.keys.get(item.scoped_key)
                if seen is not None and seen[1] >= retention_since:
                    out.append(Appended(seen[0], duplicate=True))
                    continue
                self.keys[item.scoped_key] = (item.event.event_id, item.event.ingested_at)
            self.rows.append(item.event)
            out.append(Appended(item.event.event_id, duplicate=False))
        return out


@dataclass
class _MemBatch:
    store: MemoryRelayStore
    rows: list[OutboxRow]

    async def append_to_event_store(self, events: Sequence[Event]) -> None:
        for e in events:
            self.store.event_store.setdefault(e.event_id, e)

    async def delete(self, outbox_ids: Sequence[str]) -> None:
        for i in outbox_ids:
            self.store.outbox.pop(i, None)

    async def record_publications(self, publications: Sequence[Publication]) -> None:
        self.store.publications.extend(publications)

    async def mark_failed(self, outbox_ids: Sequence[str], error: str) -> None:
        for i in outbox_ids:
            row = self.store.outbox[i]
            self.store.outbox[i] = OutboxRow(row.outbox_id, row.event, row.retry_count + 1, error)

    async def set_aside(self, rows: Sequence[tuple[str, str]]) -> None:
        for i, error in rows:
            row = self.store.outbox.pop(i)
            self.store.poison[i] = OutboxRow(row.outbox_id, row.event, row.retry_count + 1, error)


@dataclass
class MemoryRelayStore:
    outbox: dict[str, OutboxRow] = field(default_factory=dict)
    event_store: dict[str, Event] = field(default_factory=dict)
    publications: list[Publication] = field(default_factory=list)
    poison: dict[str, OutboxRow] = field(default_factory=dict)  # rows set aside for good

    def add(self, event: Event | None, outbox_id: str | None = None) -> None:
        oid = outbox_id or (event.event_id if event else "bad")
        self.outbox[oid] = OutboxRow(oid, event, 0, "" if event else "unreadable: not an event")

    def claim(self, limit: int) -> AbstractAsyncContextManager[ClaimedBatch]:
        return self._claim(limit)

    @asynccontextmanager
    async def _claim(self, limit: int) -> AsyncIterator[ClaimedBatch]:
        # Oldest first, a retried row keeps its place (one worker: it owns every slot). An
        # exception rolls the batch back, as the database transaction does.
        saved = (dict(self.outbox), dict(self.event_store), list(self.publications))
        saved_poison = dict(self.poison)
        try:
            yield _MemBatch(self, list(self.outbox.values())[:limit])
        except BaseException:
            self.outbox, self.event_store, self.publications = saved
            self.poison = saved_poison
            raise


class MemoryPublisher:
    def __init__(self) -> None:
        self.sent: list[Event] = []
        self.down = False
        self.refuse: dict[str, str] = {}  # event_id -> why the bus refuses it for good
        # Not acknowledged (a partition's leader down, an ACL): the rest of the call is
        # acknowledged, then the call raises PartlyPublished, as the Kafka publisher does.
        self.fail_aggregates: set[str] = set()
        self.fail_events: set[str] = set()
        self.calls = 0

    async def publish(self, events: Sequence[Event]) -> list[Publication | InvalidInput]:
        self.calls += 1
        if self.down:
            raise Unavailable("broker did not acknowledge: timed out")
        out: list[Publication | InvalidInput | Unavailable] = []
        for e in events:
            if e.event_id in self.refuse:
                out.append(InvalidInput(self.refuse[e.event_id]))
                continue
            if e.aggregate_id in self.fail_aggregates or e.event_id in self.fail_events:
                out.append(Unavailable("broker did not acknowledge: Local: Message timed out"))
                continue
            out.append(Publication(e.event_id, "sensor-events", 0, len(self.sent)))
            self.sent.append(e)
        if any(isinstance(r, Unavailable) for r in out):
            raise PartlyPublished("broker did not acknowledge: Local: Message timed out", out)
        return [r for r in out if not isinstance(r, Unavailable)]


class MemoryProjectionStore:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], ProjectionUpdate] = {}
        self.dead: list[DeadLetter] = []
        self.down = False

    def apply(
        self, updates: Sequence[ProjectionUpdate], dead: Sequence[DeadLetter], now: datetime
    ) -> int:
        if self.down:
            raise Unavailable("database unavailable while writing projections")
        for u in updates:
            cur = self.rows.get(u.key)
            if cur is None or u.version > cur.version:
                self.rows[u.key] = u
        self.dead.extend(dead)
        return len(updates)
