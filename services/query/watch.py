"""Live event streams (issue 19, ADR 21): the watcher's rules, no I/O of its own.

Each watcher reads the bus with a reader of its own, positioned explicitly (no consumer
group, nothing committed): resuming is opening a reader at the offsets a message named, so
there is no gap and no duplicate as long as the bus still holds them. A watcher only reads
as fast as its client takes messages, so a slow client never slows the platform; it is cut
off when it falls ``max_lag`` messages behind the end of the bus (an ``End`` message naming
the position to resume from) or when one message is not taken within ``send_timeout``
(``TooSlow``: the transport ends the call with that reason). The number of watchers is
bounded (``WatchersExhausted``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from services.core.errors import CornjacketError, InvalidInput
from services.core.events import Event

MAX_POSITION_CHARS = 4096
_PREFIX = "w1."


class WatchersExhausted(CornjacketError):
    """Every watcher slot is taken (RESOURCE_EXHAUSTED, HTTP 429)."""


class PositionExpired(CornjacketError):
    """The position is older than what the bus still keeps (FAILED_PRECONDITION)."""


class TooSlow(CornjacketError):
    """The client did not take a message in time; ``position`` is where to resume."""

    def __init__(self, message: str, position: str) -> None:
        super().__init__(message)
        self.position = position


Partition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Position:
    """The next offset to read, per (topic, partition): a stream's place on the bus."""

    offsets: Mapping[Partition, int]

    def encode(self) -> str:
        body = json.dumps(
            [[t, p, o] for (t, p), o in sorted(self.offsets.items())], separators=(",", ":")
        )
        return _PREFIX + base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Position:
        bad = InvalidInput(
            "position: not a position this service gave (pass back a message's position)"
        )
        if len(text) > MAX_POSITION_CHARS or not text.startswith(_PREFIX):
            raise bad
        raw = text[len(_PREFIX) :]
        try:
            rows = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise bad from None
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
        return cls(offsets)

    def after(self, topic: str, partition: int, offset: int) -> Position:
        return Position({**self.offsets, (topic, partition): offset + 1})


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
    reason: str  # "too_slow" | "shutdown"
    message: str
    position: str


Item = EventItem | Heartbeat | End
Send = Callable[[Item], Awaitable[None]]


class WatchHub:
    def __init__(
        self,
        opener: BusOpener,
        *,
        max_watchers: int,
        max_lag: int,
        send_timeout: float,
        heartbeat: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._opener = opener
        self._max = max_watchers
        self._max_lag = max_lag
        self._send_timeout = send_timeout
        self._heartbeat = heartbeat
        self._clock = clock
        self.active = 0

    async def watch(self, flt: Filter, position: str, send: Send, stop: asyncio.Event) -> None:
        """Stream to ``send`` until ``stop`` is set or the client is cut off. Raises
        InvalidInput (bad position or filter), WatchersExhausted, PositionExpired, TooSlow,
        Unavailable."""
        if len(flt.event_type_prefix) > 256 or len(flt.aggregate_id) > 256:
            raise InvalidInput("event_type_prefix and aggregate_id are at most 256 characters")
        start = Position.decode(position) if position else None
        if self.active >= self._max:
            raise WatchersExhausted(
                f"all {self._max} watcher slots are taken (CJ_WATCH_MAX_WATCHERS); retry later"
            )
        self.active += 1
        try:
            reader, at = await self._opener.open(start)
            try:
                await self._run(reader, at, flt, send, stop)
            finally:
                await reader.close()
        finally:
            self.active -= 1

    async def _send(self, send: Send, item: Item) -> None:
        try:
            await asyncio.wait_for(send(item), self._send_timeout)
        except TimeoutError:
            raise TooSlow(
                f"the client did not take a message within {self._send_timeout:g}s "
                "(CJ_WATCH_SEND_TIMEOUT): cut off; resume from the position",
                item.position,
            ) from None

    async def _run(
        self, reader: BusReader, at: Position, flt: Filter, send: Send, stop: asyncio.Event
    ) -> None:
        await self._send(send, Heartbeat(at.encode()))
        quiet_since = self._clock()
        while not stop.is_set():
            wait = max(0.05, min(0.5, self._heartbeat - (self._clock() - quiet_since)))
            records = await reader.read(wait)
            for record in records:
                at = at.after(record.topic, record.partition, record.offset)
                if flt.matches(record.event):
                    await self._send(send, EventItem(record.event, at.encode()))
                    quiet_since = self._clock()
            if (lag := reader.lag()) > self._max_lag:
                await self._send(
                    send,
                    End(
                        "too_slow",
                        f"{lag} messages behind the bus (CJ_WATCH_MAX_LAG={self._max_lag}): "
                        "cut off; resume from the position",
                        at.encode(),
                    ),
                )
                return
            if self._clock() - quiet_since >= self._heartbeat:
                await self._send(send, Heartbeat(at.encode()))
                quiet_since = self._clock()
        await self._send(
            send,
            End("shutdown", "the server is shutting down: resume from the position", at.encode()),
        )
