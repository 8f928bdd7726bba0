"""Live event streams (issue 19, ADR 21): the watcher's rules, no I/O of its own.

Each watcher reads the bus with a reader of its own, positioned explicitly (no consumer
group, nothing committed): resuming is opening a reader at the offsets a message named, so
there is no gap and no duplicate as long as the bus still holds them. A watcher only reads
as fast as its client takes messages, so a slow client never slows the platform; it is cut
off when it falls ``max_lag`` messages behind the end of the bus (an ``End`` message naming
the position to resume from) or when one message is not taken within ``send_timeout``
(``TooSlow``: the transport ends the call with that reason). The number of watchers is
bounded (``WatchersExhausted``), in all and per subject (the verified token's ``sub`` the
edge forwards), so one token cannot hold every slot; a call without a subject (the edge
without authentication, a direct call inside the platform) has only the overall bound.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.core.aio import wait_event
from services.core.errors import CornjacketError, InvalidInput, Unavailable
from services.core.events import ALL_TOPICS, Event
from services.query.service import ProjectionView

MAX_POSITION_CHARS = 4096
_PREFIX = "w1."  # [[topic, partition, offset]...]: a position that names no bus
_PREFIX_BUS = "w2."  # {"bus": ..., "offsets": [[topic, partition, offset]...]}
MAX_BUS_CHARS = 64


class WatchersExhausted(CornjacketError):
    """Every watcher slot is taken (RESOURCE_EXHAUSTED, HTTP 429)."""


class PositionExpired(CornjacketError):
    """The position is older than what the bus still keeps, or names a bus that was replaced
    (FAILED_PRECONDITION)."""


class TooSlow(CornjacketError):
    """The client did not take a message in time; ``position`` is where to resume."""

    def __init__(self, message: str, position: str) -> None:
        super().__init__(message)
        self.position = position


Partition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Position:
    """The next offset to read, per (topic, partition): a stream's place on the bus. ``bus``
    names the bus those offsets belong to (its generation: a digest of the cluster id the
    reader saw, "" unknown); an empty broker swapped in for the last one is another bus."""

    offsets: Mapping[Partition, int]
    bus: str = ""

    def encode(self) -> str:
        rows = [[t, p, o] for (t, p), o in sorted(self.offsets.items())]
        if not self.bus:
            body = json.dumps(rows, separators=(",", ":"))
            return _PREFIX + base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")
        body = json.dumps({"bus": self.bus, "offsets": rows}, separators=(",", ":"))
        return _PREFIX_BUS + base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Position:
        bad = InvalidInput(
            "position: not a position this service gave (pass back a message's position)"
        )
        if len(text) > MAX_POSITION_CHARS or not text.startswith((_PREFIX, _PREFIX_BUS)):
            raise bad
        raw = text[len(_PREFIX) :]
        try:
            body = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise bad from None
        bus = ""
        if text.startswith(_PREFIX_BUS):
            if (
                not isinstance(body, dict)
                or set(body) != {"bus", "offsets"}
                or not isinstance(body["bus"], str)
                or not 0 < len(body["bus"]) <= MAX_BUS_CHARS
            ):
                raise bad
            bus, rows = body["bus"], body["offsets"]
        else:
            rows = body
        offsets: dict[Partition, int] = {}
        if not isinstance(rows, list):
            raise bad
        for row in rows:
            if (
                not isinstance(row, list)
                or len(row) != 3
                or not isinstance(row[0], str)
                or type(row[1]) is not int
                or type(row[2]) is not int
                or row[1] < 0
                or row[2] < 0
            ):
                raise bad
            offsets[(row[0], row[1])] = row[2]
        return cls(offsets, bus)

    def after(self, topic: str, partition: int, offset: int) -> Position:
        return Position({**self.offsets, (topic, partition): offset + 1}, self.bus)


@dataclass(frozen=True, slots=True)
class BusRecord:
    topic: str
    partition: int
    offset: int
    event: Event


class BusReader(Protocol):
    """One watcher's reader of the bus, opened at a position. Not shared between tasks."""

    async def read(self, max_wait: float) -> Sequence[BusRecord]:
        """The next records in partition order (possibly none after ``max_wait`` seconds).
        Raises Unavailable when the bus cannot be reached."""
        ...

    def lag(self) -> int:
        """Messages between what was read and the end of the bus, as last known (0 unknown)."""
        ...

    def replaced(self) -> Position | None:
        """When the reader found the bus replaced (another cluster: an empty broker swapped
        in) since the last call: where it started again (the new bus's beginning). Else None."""
        ...

    async def close(self) -> None: ...


class BusOpener(Protocol):
    async def open(self, start: Position | None) -> tuple[BusReader, Position]:
        """A reader at ``start`` (None: the end of the bus now) and the position it starts
        at (every partition named). Raises PositionExpired when ``start`` names an offset
        the bus no longer keeps, Unavailable when the bus cannot be reached."""
        ...


@dataclass(frozen=True, slots=True)
class Filter:
    event_type_prefix: str = ""
    aggregate_id: str = ""

    def matches(self, event: Event) -> bool:
        return event.event_type.startswith(self.event_type_prefix) and (
            not self.aggregate_id or event.aggregate_id == self.aggregate_id
        )


@dataclass(frozen=True, slots=True)
class EventItem:
    event: Event
    position: str


@dataclass(frozen=True, slots=True)
class Heartbeat:
    position: str


@dataclass(frozen=True, slots=True)
class End:
    reason: str  # "too_slow" | "shutdown" | "max_duration"
    message: str
    position: str


@dataclass(frozen=True, slots=True)
class ProjectionItem:
    """A projection's state (WatchProjection)."""

    view: ProjectionView
    position: str


Item = EventItem | Heartbeat | End | ProjectionItem
Send = Callable[[Item], Awaitable[None]]


class _EventTap:
    """WatchEvents: every record the filter matches, each with the position after it."""

    def __init__(self, flt: Filter, at: Position) -> None:
        self._flt = flt
        self.at = at

    def full(self) -> bool:
        return False

    async def start(self, send: Send) -> None:
        return None

    async def rebase(self, at: Position, send: Send) -> None:
        self.at = at

    async def feed(self, records: Sequence[BusRecord], send: Send) -> bool:
        sent = False
        for record in records:
            self.at = self.at.after(record.topic, record.partition, record.offset)
            if self._flt.matches(record.event):
                await send(EventItem(record.event, self.at.encode()))
                sent = True
        return sent


class _Tap(Protocol):
    """What a stream makes of the bus records its reader reads (events, projection states).
    ``at`` is where a stream resumed after everything sent so far continues."""

    at: Position

    def full(self) -> bool: ...

    async def start(self, send: Send) -> None: ...

    async def rebase(self, at: Position, send: Send) -> None:
        """The reader starts again at ``at`` on a new bus (the last one was replaced)."""
        ...

    async def feed(self, records: Sequence[BusRecord], send: Send) -> bool: ...


class WatchHub:
    def __init__(
        self,
        opener: BusOpener,
        *,
        max_watchers: int,
        max_lag: int,
        send_timeout: float,
        heartbeat: float,
        max_duration: float = 0.0,
        max_per_subject: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        projections: ProjectionFeed | None = None,
    ) -> None:
        self._opener = opener
        self._max = max_watchers
        self._max_per_subject = max_per_subject
        self._by_subject: dict[str, int] = {}
        self._max_lag = max_lag
        self._send_timeout = send_timeout
        self._heartbeat = heartbeat
        self._max_duration = max_duration  # 0: streams are not ended for their age
        self._clock = clock
        self._projections = projections
        self.active = 0

    async def watch(
        self, flt: Filter, position: str, send: Send, stop: asyncio.Event, subject: str = ""
    ) -> None:
        """Stream to ``send`` until ``stop`` is set or the client is cut off. ``subject``:
        whose stream (counted against max_per_subject; "" none). Raises InvalidInput (bad
        position or filter), WatchersExhausted, PositionExpired, TooSlow, Unavailable."""
        if len(flt.event_type_prefix) > 256 or len(flt.aggregate_id) > 256:
            raise InvalidInput("event_type_prefix and aggregate_id are at most 256 characters")
        start = Position.decode(position) if position else None
        async with self._slot(subject):
            reader, at = await self._opener.open(start)
            try:
                end = await self._run(reader, _EventTap(flt, at), send, stop)
            finally:
                await reader.close()
        # After the slot is free: a client reopening the moment it reads the end finds it.
        await self._send(send, end)

    async def watch_projection(
        self,
        projection_type: str,
        aggregate_id: str,
        position: str,
        send: Send,
        stop: asyncio.Event,
        subject: str = "",
    ) -> None:
        """One projection (``aggregate_id``) or all of a type, live: without a position the
        current state first, then a heartbeat, then changes. Raises as ``watch``."""
        feed = self._projections
        if feed is None:
            raise Unavailable("projection streams are not configured in this process")
        feed.source.validate(projection_type, aggregate_id or None)
        start = Position.decode(position) if position else None
        async with self._slot(subject):
            # Without a position the stream reads from where the event handler is (what it
            # committed is in the projections): the snapshot read after that covers every
            # event before it, and the bus after it brings every later change.
            # (Its bus is not checked: no position was asked for.)
            applied = Position((await feed.applied.applied()).offsets)
            reader, at = await self._opener.open(start or applied)
            try:
                tap = _ProjectionTap(feed, projection_type, aggregate_id, at, start is None)
                end = await self._run(reader, tap, send, stop)
            finally:
                await reader.close()
        await self._send(send, end)  # after the slot is free, as in ``watch``

    @contextlib.asynccontextmanager
    async def _slot(self, subject: str) -> AsyncIterator[None]:
        if self.active >= self._max:
            raise WatchersExhausted(
                f"all {self._max} watcher slots are taken (CJ_WATCH_MAX_WATCHERS); retry later"
            )
        cap = self._max_per_subject if subject else None
        held = self._by_subject.get(subject, 0)
        if cap is not None and held >= cap:
            raise WatchersExhausted(
                f"this token's subject already holds {held} streams "
                f"(CJ_WATCH_MAX_PER_SUBJECT={cap}): close one, or retry later"
            )
        self.active += 1
        if subject:
            self._by_subject[subject] = held + 1
        try:
            yield
        finally:
            self.active -= 1
            if subject:
                left = self._by_subject[subject] - 1
                if left:
                    self._by_subject[subject] = left
                else:
                    del self._by_subject[subject]

    async def _send(self, send: Send, item: Item) -> None:
        try:
            await asyncio.wait_for(send(item), self._send_timeout)
        except TimeoutError:
            raise TooSlow(
                f"the client did not take a message within {self._send_timeout:g}s "
                "(CJ_WATCH_SEND_TIMEOUT): cut off; resume from the position",
                item.position,
            ) from None

    async def _run(self, reader: BusReader, tap: _Tap, send: Send, stop: asyncio.Event) -> End:
        """Stream until ``stop``, the stream's maximum duration or a client too far behind;
        returns the end to send once the reader is closed and the slot released."""

        async def timed(item: Item) -> None:
            await self._send(send, item)

        ends_at = self._clock() + self._max_duration if self._max_duration else None
        await tap.start(timed)
        await self._send(send, Heartbeat(tap.at.encode()))
        quiet_since = self._clock()
        while not stop.is_set():
            if ends_at is not None and self._clock() >= ends_at:
                return End(
                    "max_duration",
                    f"the stream reached its maximum duration ({self._max_duration:g}s, "
                    "CJ_WATCH_MAX_DURATION): reopen it from the position",
                    tap.at.encode(),
                )
            wait = max(0.05, min(0.5, self._heartbeat - (self._clock() - quiet_since)))
            if ends_at is not None:
                wait = max(0.05, min(wait, ends_at - self._clock()))
            if tap.full():  # the projection tap waits for the event handler: read no more
                await wait_event(stop, wait)
                records: Sequence[BusRecord] = ()
            else:
                records = await reader.read(wait)
                if (fresh := reader.replaced()) is not None:  # before its records
                    await tap.rebase(fresh, timed)
            if await tap.feed(records, timed):
                quiet_since = self._clock()
            if (lag := reader.lag()) > self._max_lag:
                return End(
                    "too_slow",
                    f"{lag} messages behind the bus (CJ_WATCH_MAX_LAG={self._max_lag}): "
                    "cut off; resume from the position",
                    tap.at.encode(),
                )
            if self._clock() - quiet_since >= self._heartbeat:
                await self._send(send, Heartbeat(tap.at.encode()))
                quiet_since = self._clock()
        return End(
            "shutdown", "the server is shutting down: resume from the position", tap.at.encode()
        )


# --- projection streams (ADR 21, "Projection streams") -----------------------------------
class AppliedOffsets(Protocol):
    """How far the event handler is: its consumer group's committed offsets (the next offset
    it reads, per partition). Every record before them is in the projections (the handler
    commits only after its writes). Safe for concurrent use; raises Unavailable."""

    async def applied(self) -> Position: ...


class ProjectionSource(Protocol):
    """Projection states as the query API answers them. Safe for concurrent use; raises
    Unavailable and (validate) InvalidInput."""

    def validate(self, projection_type: str, aggregate_id: str | None) -> None: ...

    async def states(
        self, projection_type: str, aggregate_ids: Sequence[str]
    ) -> list[ProjectionView]: ...

    async def page_after(
        self, projection_type: str, after: str, limit: int
    ) -> list[ProjectionView]:
        """Projections of the type with aggregate_id > ``after``, ordered by aggregate_id."""
        ...


@dataclass(frozen=True, slots=True)
class ProjectionFeed:
    source: ProjectionSource
    applied: AppliedOffsets
    # The topics the event handler reads: records of other topics change no projection
    # and are passed at once (the handler never commits there).
    topics: frozenset[str] = frozenset(ALL_TOPICS)
    # Records read but not yet applied by the handler, at most: then the stream reads no
    # more until the handler catches up (a stuck handler ends it as too slow).
    max_pending: int = 5000


SNAPSHOT_PAGE = 200
_VERSIONS_KEPT = 10_000


class _ProjectionTap:
    """WatchProjection: holds each record until the event handler has committed past it,
    then reads the states of the aggregates it touched and sends those that changed."""

    def __init__(
        self,
        feed: ProjectionFeed,
        projection_type: str,
        aggregate_id: str,
        at: Position,
        snapshot: bool,
    ) -> None:
        self._feed = feed
        self._type = projection_type
        self._aggregate = aggregate_id
        self._snapshot = snapshot
        self.at = at
        self._pending: list[BusRecord] = []
        # The handler's last answer was of another bus than the stream's (a swap seen by one
        # side first): the held records wait, but the reader must go on reading to notice
        # the swap itself, even with max_pending held (else nothing ever moves again).
        self._other_bus = False
        # The version last sent per aggregate: a state is sent again only when it moved.
        self._sent: dict[str, tuple[datetime, str]] = {}

    def full(self) -> bool:
        return len(self._pending) >= self._feed.max_pending and not self._other_bus

    async def _emit(self, views: Sequence[ProjectionView], send: Send, before: str) -> bool:
        fresh = [
            v
            for v in views
            if self._sent.get(v.aggregate_id) != (v.last_event_timestamp, v.last_event_id)
        ]
        if len(self._sent) + len(fresh) > _VERSIONS_KEPT:
            self._sent.clear()  # bounded memory; costs at most a repeated state
        after = self.at.encode()
        for i, v in enumerate(fresh):
            self._sent[v.aggregate_id] = (v.last_event_timestamp, v.last_event_id)
            # A client cut off inside a batch resumes before it (repeats, never a gap).
            await send(ProjectionItem(v, after if i == len(fresh) - 1 else before))
        return bool(fresh)

    async def start(self, send: Send) -> None:
        if not self._snapshot:
            return
        position = self.at.encode()
        source = self._feed.source
        if self._aggregate:
            await self._emit(await source.states(self._type, [self._aggregate]), send, position)
            return
        after = ""
        while page := await source.page_after(self._type, after, SNAPSHOT_PAGE):
            await self._emit(page, send, position)
            after = page[-1].aggregate_id

    async def rebase(self, at: Position, send: Send) -> None:
        """What was read of the old bus was applied before the swap (it waits until every
        consumer group read the old bus to its end; else its events are published again on
        the new one): the states of what is pending are sent now, then the new bus is read."""
        pending, self._pending = self._pending, []
        self._other_bus = False
        touched = {
            r.event.aggregate_id: None
            for r in pending
            if r.topic in self._feed.topics
            and (not self._aggregate or r.event.aggregate_id == self._aggregate)
        }
        before = self.at.encode()
        self.at = at
        if touched:
            views = await self._feed.source.states(self._type, list(touched))
            await self._emit(views, send, before)

    async def feed(self, records: Sequence[BusRecord], send: Send) -> bool:
        self._pending.extend(records)
        if not self._pending:
            return False
        progress = await self._feed.applied.applied()
        # The handler's offsets on another bus than the one read (the swap, seen by one side
        # first) say nothing about these records: wait for the next answer.
        stale = bool(progress.bus and self.at.bus and progress.bus != self.at.bus)
        self._other_bus = stale
        applied = {} if stale else progress.offsets
        topics = self._feed.topics

        def done(r: BusRecord) -> bool:
            return r.topic not in topics or r.offset < applied.get((r.topic, r.partition), 0)

        ready = [r for r in self._pending if done(r)]
        if not ready:
            return False
        # Within a partition the applied records are a prefix (offsets rise, and so does
        # the handler's commit): the rest keep their order.
        self._pending = [r for r in self._pending if not done(r)]
        before = self.at.encode()
        touched: dict[str, None] = {}
        for r in ready:
            self.at = self.at.after(r.topic, r.partition, r.offset)
            if r.topic not in topics:
                continue
            if not self._aggregate or r.event.aggregate_id == self._aggregate:
                touched[r.event.aggregate_id] = None
        if not touched:
            return False
        views = await self._feed.source.states(self._type, list(touched))
        return await self._emit(views, send, before)
