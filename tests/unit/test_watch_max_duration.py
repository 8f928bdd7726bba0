"""CJ_WATCH_MAX_DURATION (issue 19): the query service ends a stream that reached it with a
WatchEnd naming the reason, releasing its slot; the SDKs reopen such a stream from its
position at once (no backoff, not a failure)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from cornjacket.v1 import watch_pb2
from cornjacket_sdk import streams

from services.config.settings import Env, WatchSettings
from services.core.errors import ConfigError
from services.core.events import Event
from services.query.watch import (
    BusRecord,
    End,
    EventItem,
    Filter,
    Heartbeat,
    Item,
    Position,
    WatchHub,
)

pytestmark = pytest.mark.unit

T = datetime(2026, 12, 1, tzinfo=UTC)
START = Position({("sensor-events", 0): 10})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TimedReader:
    """A bus whose reads take the time they may wait (on a clock of the test's)."""

    def __init__(self, clock: Clock, batches: list[list[BusRecord]]) -> None:
        self.clock = clock
        self.batches = batches
        self.closed = False

    async def read(self, max_wait: float) -> Sequence[BusRecord]:
        if self.batches:
            return self.batches.pop(0)
        self.clock.now += max_wait
        await asyncio.sleep(0)
        return []

    def replaced(self) -> Position | None:
        return None

    def lag(self) -> int:
        return 0

    async def close(self) -> None:
        self.closed = True


class Opener:
    def __init__(self, reader: TimedReader) -> None:
        self.reader = reader

    async def open(self, start: Position | None) -> tuple[TimedReader, Position]:
        return self.reader, start or START


def test_the_setting_parses_and_fails_fast() -> None:
    assert WatchSettings().max_duration == 3600.0
    assert WatchSettings.from_env(Env({"CJ_WATCH_MAX_DURATION": "5m"})).max_duration == 300.0
    assert WatchSettings.from_env(Env({"CJ_WATCH_MAX_DURATION": "0"})).max_duration == 0.0
    with pytest.raises(ConfigError, match="CJ_WATCH_MAX_DURATION='soon'"):
        WatchSettings.from_env(Env({"CJ_WATCH_MAX_DURATION": "soon"}))
    with pytest.raises(ConfigError, match="CJ_WATCH_MAX_DURATION=0.5s must be 0"):
        WatchSettings.from_env(Env({"CJ_WATCH_MAX_DURATION": "500ms"}))


async def test_a_stream_is_ended_at_its_maximum_duration_and_its_slot_released() -> None:
    clock = Clock()
    record = BusRecord("sensor-events", 0, 10, Event("e1", "sensor.reading", "d", T, T, {}))
    reader = TimedReader(clock, [[record]])
    hub = WatchHub(
        Opener(reader),
        max_watchers=1,
        max_lag=100,
        send_timeout=5.0,
        heartbeat=15.0,
        max_duration=60.0,
        clock=clock,
    )
    got: list[Item] = []
    at_end: list[tuple[int, bool]] = []

    async def send(item: Item) -> None:
        got.append(item)
        if isinstance(item, End):
            at_end.append((hub.active, reader.closed))

    await hub.watch(Filter(), "", send, asyncio.Event())
    assert at_end == [(0, True)], "the slot is free when the client reads the end"
    assert [type(i) for i in got[:2]] == [Heartbeat, EventItem]
    end = got[-1]
    assert isinstance(end, End) and end.reason == "max_duration", got
    assert "CJ_WATCH_MAX_DURATION" in end.message
    assert end.position == got[1].position, "resumes right after the last event"
    assert 60.0 <= clock.now < 61.0, clock.now
    assert reader.closed and hub.active == 0


async def test_without_a_maximum_a_stream_runs_until_stopped() -> None:
    clock = Clock()
    stop = asyncio.Event()
    got: list[Item] = []

    async def send(item: Item) -> None:
        got.append(item)
        if clock.now > 10_000:
            stop.set()

    hub = WatchHub(
        Opener(TimedReader(clock, [])),
        max_watchers=1,
        max_lag=100,
        send_timeout=5.0,
        heartbeat=15.0,
        max_duration=0.0,
        clock=clock,
    )
    await hub.watch(Filter(), "", send, stop)
    end = got[-1]
    assert isinstance(end, End) and end.reason == "shutdown"


# --- the SDKs' iterators ------------------------------------------------------------------
def _ev(p: str, event_id: str) -> watch_pb2.WatchEventsResponse:
    msg = watch_pb2.WatchEventsResponse(position=p)
    msg.event.event_id = event_id
    return msg


def _hb(p: str) -> watch_pb2.WatchEventsResponse:
    return watch_pb2.WatchEventsResponse(heartbeat=watch_pb2.WatchHeartbeat(), position=p)


def _aged(p: str) -> watch_pb2.WatchEventsResponse:
    reason = watch_pb2.WATCH_END_REASON_MAX_DURATION
    return watch_pb2.WatchEventsResponse(
        end=watch_pb2.WatchEnd(reason=reason, message="max duration"), position=p
    )


class _Call:
    def __init__(self, msgs: list[Any]) -> None:
        self._it: Iterator[Any] = iter(msgs)

    def __iter__(self) -> _Call:
        return self

    def __next__(self) -> Any:
        return next(self._it)

    async def read(self) -> Any:
        return next(self._it, grpc.aio.EOF)

    def cancel(self) -> None:
        pass


def _server(opens: list[str]) -> Any:
    """Each stream: its heartbeat, nothing or one event, then ended for its age (many times
    more than MAX_RESUMES in a row without an event); the 30th stream is closed."""

    def open_call(at: str) -> _Call:
        opens.append(at)
        n = len(opens)
        if n == 30:
            return _Call([])
        if n % 10 == 0:
            return _Call([_hb(f"p{n - 1}"), _ev(f"p{n}", f"e{n}"), _aged(f"p{n}")])
        return _Call([_hb(f"p{n - 1}"), _aged(f"p{n}")])

    return open_call


def test_the_sync_iterator_reopens_at_once_from_the_position(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []
    monkeypatch.setattr("cornjacket_sdk.streams.time.sleep", slept.append)
    opens: list[str] = []
    stream = streams.Stream(_server(opens), streams.event_of, position="p0")
    assert [e.event_id for e in stream] == ["e10", "e20"]
    assert opens == [f"p{n}" for n in range(30)], "each reopened where the last one ended"
    assert all(s == 0 for s in slept), slept
    assert stream.end is not None and stream.end.reason == "max_duration"


async def test_the_async_iterator_reopens_at_once_from_the_position() -> None:
    # Counted as failures, the ends would raise after MAX_RESUMES with backoffs between.
    opens: list[str] = []
    stream = streams.AsyncStream(_server(opens), streams.event_of, position="p0")
    assert [e.event_id async for e in stream] == ["e10", "e20"]
    assert opens == [f"p{n}" for n in range(30)]
