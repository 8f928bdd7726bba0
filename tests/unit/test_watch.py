"""The watcher's rules (issue 19): positions, filters, heartbeats, the bound on watchers and
cutting off slow clients, against a fake bus."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from services.core.errors import InvalidInput
from services.core.events import Event
from services.query.service import ProjectionView
from services.query.watch import (
    BusRecord,
    End,
    EventItem,
    Filter,
    Heartbeat,
    Item,
    Position,
    ProjectionFeed,
    ProjectionItem,
    TooSlow,
    WatchersExhausted,
    WatchHub,
)

pytestmark = pytest.mark.unit

T = datetime(2026, 12, 1, tzinfo=UTC)


def ev(n: int, etype: str = "sensor.reading", agg: str = "d1") -> Event:
    return Event(f"e{n}", etype, agg, T, T, {"n": n})


class FakeReader:
    def __init__(self, batches: list[list[BusRecord]], lag: int = 0) -> None:
        self.batches = batches
        self.lagging = lag
        self.closed = False
        self.drained = asyncio.Event()

    async def read(self, max_wait: float) -> Sequence[BusRecord]:
        if self.batches:
            return self.batches.pop(0)
        self.drained.set()
        await asyncio.sleep(0)  # a quiet bus: nothing this round
        return []

    def replaced(self) -> Position | None:
        return None

    def lag(self) -> int:
        return self.lagging

    async def close(self) -> None:
        self.closed = True


class FakeOpener:
    def __init__(self, reader: FakeReader, at: Position) -> None:
        self.reader = reader
        self.at = at
        self.starts: list[Position | None] = []

    async def open(self, start: Position | None) -> tuple[FakeReader, Position]:
        self.starts.append(start)
        return self.reader, self.at


START = Position({("sensor-events", 0): 10, ("sensor-events", 1): 5})


def hub(opener: FakeOpener, **kw: float) -> WatchHub:
    args: dict[str, float] = {
        "max_watchers": 2,
        "max_lag": 100,
        "send_timeout": 5.0,
        "heartbeat": 1000.0,
    }
    args.update(kw)
    per_subject = kw.get("max_per_subject")
    return WatchHub(
        opener,
        max_per_subject=None if per_subject is None else int(per_subject),
        max_watchers=int(args["max_watchers"]),
        max_lag=int(args["max_lag"]),
        send_timeout=args["send_timeout"],
        heartbeat=args["heartbeat"],
    )


def test_position_round_trip_and_bad_positions() -> None:
    assert Position.decode(START.encode()) == START
    for bad in ["x", "w1.!!!", "w1." + "A" * 5000, Position({("t", 0): 1}).encode()[:-3] + "$"]:
        with pytest.raises(InvalidInput):
            Position.decode(bad)
    neg = Position({("t", 0): 0}).encode()
    assert Position.decode(neg).offsets == {("t", 0): 0}


async def test_streams_matching_events_with_positions_after_each() -> None:
    reader = FakeReader(
        [
            [
                BusRecord("sensor-events", 0, 10, ev(1)),
                BusRecord("sensor-events", 1, 5, ev(2, agg="other")),
                BusRecord("sensor-events", 0, 11, ev(3, etype="sensor.alarm")),
            ]
        ]
    )
    opener = FakeOpener(reader, START)
    h = hub(opener)
    got: list[Item] = []
    stop = asyncio.Event()

    async def send(item: Item) -> None:
        got.append(item)
        if isinstance(item, EventItem):
            stop.set()

    await h.watch(Filter("sensor.reading", "d1"), "", send, stop)
    assert isinstance(got[0], Heartbeat) and Position.decode(got[0].position) == START
    assert isinstance(got[1], EventItem) and got[1].event.event_id == "e1"
    assert Position.decode(got[1].position).offsets[("sensor-events", 0)] == 11
    # the server stopping ends the stream with a reason and the place to resume from,
    # past the events the filter skipped
    assert isinstance(got[-1], End) and got[-1].reason == "shutdown"
    assert Position.decode(got[-1].position).offsets == {
        ("sensor-events", 0): 12,
        ("sensor-events", 1): 6,
    }
    assert reader.closed and h.active == 0


async def test_resume_opens_the_reader_at_the_given_position() -> None:
    opener = FakeOpener(FakeReader([]), START)
    stop = asyncio.Event()
    stop.set()

    async def send(item: Item) -> None:
        pass

    await hub(opener).watch(Filter(), START.encode(), send, stop)
    assert opener.starts == [START]


async def test_watchers_are_bounded() -> None:
    opener = FakeOpener(FakeReader([]), START)
    h = hub(opener, max_watchers=1)
    stop = asyncio.Event()
    first = asyncio.Event()

    async def send(item: Item) -> None:
        first.set()

    task = asyncio.create_task(h.watch(Filter(), "", send, stop))
    await first.wait()
    with pytest.raises(WatchersExhausted, match="CJ_WATCH_MAX_WATCHERS"):
        await h.watch(Filter(), "", send, stop)
    stop.set()
    await task
    assert h.active == 0


async def test_one_subject_holds_at_most_its_share_of_the_watchers() -> None:
    """Review of issue 19: one read token could hold every slot. Each subject at most
    max_per_subject; other subjects still get a slot; no subject (no edge auth): no cap."""
    opener = FakeOpener(FakeReader([]), START)
    h = hub(opener, max_watchers=10, max_per_subject=2)
    stop = asyncio.Event()

    async def hold(subject: str) -> asyncio.Task[None]:
        first = asyncio.Event()

        async def send(item: Item) -> None:
            first.set()

        task = asyncio.create_task(h.watch(Filter(), "", send, stop, subject=subject))
        await first.wait()
        return task

    tasks = [await hold("alice"), await hold("alice")]
    with pytest.raises(WatchersExhausted, match="CJ_WATCH_MAX_PER_SUBJECT=2"):
        await h.watch(Filter(), "", lambda item: asyncio.sleep(0), stop, subject="alice")
    tasks += [await hold("bob"), await hold(""), await hold(""), await hold("")]
    assert h.active == 6
    stop.set()
    await asyncio.gather(*tasks)
    assert h.active == 0
    stop.clear()
    tasks = [await hold("alice"), await hold("alice")]  # the slots came back
    stop.set()
    await asyncio.gather(*tasks)


async def test_a_client_far_behind_the_bus_is_cut_off_with_a_reason() -> None:
    reader = FakeReader([[BusRecord("sensor-events", 0, 10, ev(1))]], lag=101)
    got: list[Item] = []

    async def send(item: Item) -> None:
        got.append(item)

    await hub(FakeOpener(reader, START), max_lag=100).watch(Filter(), "", send, asyncio.Event())
    end = got[-1]
    assert isinstance(end, End) and end.reason == "too_slow" and "CJ_WATCH_MAX_LAG" in end.message
    assert Position.decode(end.position).offsets[("sensor-events", 0)] == 11
    assert reader.closed


async def test_a_client_that_takes_nothing_is_cut_off() -> None:
    reader = FakeReader([[BusRecord("sensor-events", 0, 10, ev(1))]])
    never = asyncio.Event()
    sent = 0

    async def send(item: Item) -> None:
        nonlocal sent
        sent += 1
        if sent > 1:
            await never.wait()  # the client's window is full: the write never completes

    h = hub(FakeOpener(reader, START), send_timeout=0.1)
    with pytest.raises(TooSlow, match="CJ_WATCH_SEND_TIMEOUT") as err:
        await h.watch(Filter(), "", send, asyncio.Event())
    assert Position.decode(err.value.position).offsets[("sensor-events", 0)] == 11
    assert reader.closed and h.active == 0


async def test_a_quiet_stream_sends_heartbeats() -> None:
    reader = FakeReader([])
    stop = asyncio.Event()
    beats = 0

    async def send(item: Item) -> None:
        nonlocal beats
        if isinstance(item, Heartbeat):
            beats += 1
            if beats == 3:
                stop.set()

    await hub(FakeOpener(reader, START), heartbeat=0.01).watch(Filter(), "", send, stop)
    assert beats == 3


async def test_oversized_filter_is_invalid() -> None:
    async def send(item: Item) -> None:
        pass

    with pytest.raises(InvalidInput):
        await hub(FakeOpener(FakeReader([]), START)).watch(
            Filter("x" * 300), "", send, asyncio.Event()
        )


def test_watch_settings_fail_fast_naming_the_variable() -> None:
    from services.config.settings import Env, WatchSettings
    from services.core.errors import ConfigError

    assert WatchSettings.from_env(Env({})) == WatchSettings()
    with pytest.raises(ConfigError, match="CJ_WATCH_HEARTBEAT"):
        WatchSettings.from_env(Env({"CJ_WATCH_HEARTBEAT": "5m"}))
    with pytest.raises(ConfigError, match="CJ_WATCH_MAX_WATCHERS"):
        WatchSettings.from_env(Env({"CJ_WATCH_MAX_WATCHERS": "many"}))
    assert WatchSettings().max_per_subject == 4
    assert WatchSettings.from_env(Env({"CJ_WATCH_MAX_PER_SUBJECT": "2"})).max_per_subject == 2
    with pytest.raises(ConfigError, match="CJ_WATCH_MAX_PER_SUBJECT.*0"):
        WatchSettings.from_env(Env({"CJ_WATCH_MAX_PER_SUBJECT": "0"}))


# --- WatchProjection: held until the event handler applied the record -------------------
class FakeStates:
    def __init__(self) -> None:
        self.views: dict[str, ProjectionView] = {}
        self.asked: list[list[str]] = []

    def put(self, agg: str, n: int) -> None:
        self.views[agg] = ProjectionView(f"p-{agg}", "sensor_state", agg, {"n": n}, f"e{n}", T, T)

    def validate(self, projection_type: str, aggregate_id: str | None) -> None:
        if not projection_type:
            raise InvalidInput("projection_type is required")

    async def states(self, projection_type: str, ids: Sequence[str]) -> list[ProjectionView]:
        self.asked.append(list(ids))
        return [self.views[a] for a in ids if a in self.views]

    async def page_after(
        self, projection_type: str, after: str, limit: int
    ) -> list[ProjectionView]:
        return sorted(
            (v for a, v in self.views.items() if a > after), key=lambda v: v.aggregate_id
        )[:limit]


class FakeApplied:
    def __init__(self, offsets: dict[tuple[str, int], int]) -> None:
        self.offsets = offsets
        self.asked = asyncio.Event()

    async def applied(self) -> Position:
        self.asked.set()
        return Position(dict(self.offsets))


async def test_a_projection_change_waits_for_the_handler_then_sends_the_state() -> None:
    reader = FakeReader(
        [[BusRecord("sensor-events", 0, 10, ev(1)), BusRecord("sensor-events", 0, 11, ev(2))]]
    )
    opener = FakeOpener(reader, START)
    states = FakeStates()
    applied = FakeApplied({("sensor-events", 0): 10, ("sensor-events", 1): 5})
    h = WatchHub(
        opener,
        max_watchers=2,
        max_lag=100,
        send_timeout=5.0,
        heartbeat=1000.0,
        projections=ProjectionFeed(states, applied),
    )
    got: list[Item] = []
    sent = asyncio.Event()

    async def send(item: Item) -> None:
        got.append(item)
        if isinstance(item, ProjectionItem):
            sent.set()

    stop = asyncio.Event()
    task = asyncio.create_task(h.watch_projection("sensor_state", "d1", "", send, stop))
    await reader.drained.wait()
    await applied.asked.wait()
    # Read, not yet applied: nothing read from the projections, nothing sent but the
    # heartbeat that ends the (empty) current state; the stream opened where the handler was.
    assert opener.starts == [Position({("sensor-events", 0): 10, ("sensor-events", 1): 5})]
    assert states.asked == [["d1"]] and [type(i) for i in got] == [Heartbeat]
    states.put("d1", 2)  # the handler writes both, then commits past them
    applied.offsets[("sensor-events", 0)] = 12
    await sent.wait()
    stop.set()
    await task
    item = got[1]
    assert isinstance(item, ProjectionItem) and item.view.state == {"n": 2}
    assert Position.decode(item.position).offsets[("sensor-events", 0)] == 12
    assert isinstance(got[-1], End) and got[-1].reason == "shutdown"


async def test_records_of_topics_the_handler_does_not_read_are_not_waited_for() -> None:
    # The handler never commits on a topic it does not read: a projection stream that waited
    # for it would stop reading at max_pending and be cut off as too slow.
    reader = FakeReader(
        [
            [
                BusRecord("system-events", 0, 0, ev(1, "system.x")),
                BusRecord("sensor-events", 0, 10, ev(2)),
            ]
        ]
    )
    states = FakeStates()
    states.put("d1", 2)
    applied = FakeApplied({("sensor-events", 0): 11})
    feed = ProjectionFeed(states, applied, topics=frozenset({"sensor-events"}))
    h = WatchHub(
        FakeOpener(reader, START),
        max_watchers=2,
        max_lag=100,
        send_timeout=5.0,
        heartbeat=1000.0,
        projections=feed,
    )
    got: list[Item] = []
    sent = asyncio.Event()

    async def send(item: Item) -> None:
        got.append(item)
        if isinstance(item, ProjectionItem):
            sent.set()

    stop = asyncio.Event()
    task = asyncio.create_task(h.watch_projection("sensor_state", "d1", START.encode(), send, stop))
    await sent.wait()
    stop.set()
    await task
    item = next(i for i in got if isinstance(i, ProjectionItem))
    offsets = Position.decode(item.position).offsets
    assert offsets[("system-events", 0)] == 1 and offsets[("sensor-events", 0)] == 11
