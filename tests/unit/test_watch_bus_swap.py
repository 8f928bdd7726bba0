"""A watch stream across a swap of the embedded broker (ADR 11, ADR 21): the reader notices
another cluster answering (an empty broker in place of the last one), starts again at the new
bus's beginning, and the stream carries on with positions of the new bus; positions name
their bus."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from services.core.errors import InvalidInput
from services.core.events import Event
from services.infra.codec import encode_event
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
from services.query.watch_bus import KafkaBusReader, bus_id

pytestmark = pytest.mark.unit

T = datetime(2026, 12, 3, tzinfo=UTC)
TP = ("sensor-events", 0)


def event(n: int) -> Event:
    return Event(f"00000000-0000-7000-8000-{n:012d}", "sensor.reading", "d", T, T, {"n": n})


class Msg:
    def __init__(self, offset: int, n: int) -> None:
        self._offset, self._n = offset, n

    def topic(self) -> str:
        return TP[0]

    def partition(self) -> int:
        return TP[1]

    def offset(self) -> int:
        return self._offset

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return encode_event(event(self._n))


class SwappableBus:
    """One partition on a broker that can be swapped for an empty one (another cluster id).
    Like librdkafka after the swap, a consumer left at the old offsets reads the new bus from
    there: what the new bus holds below them is silently skipped."""

    def __init__(self) -> None:
        self.cluster = "cj-old"
        self.log: list[int] = list(range(100, 110))  # event numbers by offset
        self.at = 0
        self.assigned: list[list[tuple[str, int, int]]] = []

    def swap(self, events: list[int]) -> None:
        self.cluster, self.log = "cj-new", events

    def list_topics(self, timeout: float) -> Any:
        return SimpleNamespace(
            cluster_id=self.cluster,
            topics={TP[0]: SimpleNamespace(error=None, partitions={0: None})},
        )

    def assign(self, tps: list[TopicPartition]) -> None:
        self.assigned.append([(tp.topic, tp.partition, tp.offset) for tp in tps])
        self.at = tps[0].offset

    def incremental_assign(self, tps: list[TopicPartition]) -> None:
        raise AssertionError("no partition appeared")

    def consume(self, n: int, timeout: float) -> list[Msg]:
        got = [Msg(o, self.log[o]) for o in range(self.at, len(self.log))][:n]
        self.at = max(self.at, len(self.log))
        return got

    def seek(self, tp: TopicPartition) -> None:
        self.at = tp.offset

    def close(self) -> None:
        pass


def test_the_reader_starts_again_at_the_beginning_of_a_new_bus() -> None:
    async def run() -> tuple[list[int], list[int], Position | None, SwappableBus]:
        bus = SwappableBus()
        now = [0.0]
        reader = KafkaBusReader(
            bus,  # type: ignore[arg-type]
            ThreadPoolExecutor(max_workers=1),
            bus=bus_id("cj-old"),
            clock=lambda: now[0],
        )
        reader.start_at({TP: 8})
        bus.at = 8
        before = [r.event.payload["n"] for r in await reader.read(0)]
        assert reader.replaced() is None
        # The broker goes away (librdkafka's error_cb) and an empty one comes up: the next
        # read asks which cluster it is before reading anything, at once (no time passed).
        reader.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN))
        bus.swap([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
        after = [r.event.payload["n"] for r in await reader.read(0)]
        at = reader.replaced()
        await reader.close()
        return before, after, at, bus

    before, after, at, bus = asyncio.run(run())
    assert before == [108, 109]
    assert after == list(range(1, 13))  # every event of the new bus, none skipped
    assert at == Position({TP: 0}, bus_id("cj-new"))
    assert bus.assigned[-1] == [(TP[0], TP[1], 0)]


def test_the_reader_notices_a_new_bus_without_an_error_within_a_check_interval() -> None:
    async def run() -> tuple[list[int], Position | None]:
        bus = SwappableBus()
        now = [0.0]
        reader = KafkaBusReader(
            bus,  # type: ignore[arg-type]
            ThreadPoolExecutor(max_workers=1),
            bus=bus_id("cj-old"),
            clock=lambda: now[0],
        )
        reader.start_at({TP: 10})
        bus.at = 10
        bus.swap([1, 2])
        now[0] = 1.0  # CHECK_EVERY
        got = [r.event.payload["n"] for r in await reader.read(0)]
        return got, reader.replaced()

    got, at = asyncio.run(run())
    assert got == [1, 2] and at is not None and at.bus == bus_id("cj-new")


class SwappingReader:
    """A fake reader: two records of the old bus, then it reports the swap and reads the new
    bus from offset 0."""

    def __init__(self) -> None:
        self.rounds = 0
        self.new_at: Position | None = None
        self.done = asyncio.Event()

    async def read(self, max_wait: float) -> Sequence[BusRecord]:
        self.rounds += 1
        if self.rounds == 1:
            return [BusRecord(*TP, 8, event(108)), BusRecord(*TP, 9, event(109))]
        if self.rounds == 2:
            self.new_at = Position({TP: 0}, "new")
            return [BusRecord(*TP, 0, event(1)), BusRecord(*TP, 1, event(2))]
        self.done.set()
        await asyncio.sleep(0)
        return []

    def replaced(self) -> Position | None:
        at, self.new_at = self.new_at, None
        return at

    def lag(self) -> int:
        return 0

    async def close(self) -> None:
        pass


class Opener:
    def __init__(self, reader: SwappingReader) -> None:
        self.reader = reader

    async def open(self, start: Position | None) -> tuple[SwappingReader, Position]:
        return self.reader, Position({TP: 8}, "old")


def test_an_open_stream_carries_on_across_the_swap_with_positions_of_the_new_bus() -> None:
    async def run() -> list[Item]:
        reader = SwappingReader()
        hub = WatchHub(
            Opener(reader), max_watchers=1, max_lag=100, send_timeout=5.0, heartbeat=1000.0
        )
        got: list[Item] = []

        async def send(item: Item) -> None:
            got.append(item)

        stop = asyncio.Event()
        task = asyncio.create_task(hub.watch(Filter(), "", send, stop))
        await reader.done.wait()
        stop.set()
        await task
        return got

    got = asyncio.run(run())
    assert isinstance(got[0], Heartbeat) and isinstance(got[-1], End)
    assert got[-1].reason == "shutdown"
    items = [i for i in got if isinstance(i, EventItem)]
    assert [i.event.payload["n"] for i in items] == [108, 109, 1, 2]
    positions = [Position.decode(i.position) for i in items]
    assert positions[1] == Position({TP: 10}, "old")
    assert positions[2] == Position({TP: 1}, "new")
    assert Position.decode(got[-1].position) == Position({TP: 2}, "new")


def test_positions_name_their_bus() -> None:
    at = Position({TP: 5, ("alarm-events", 1): 0}, bus_id("cj-x"))
    assert at.encode().startswith("w2.") and Position.decode(at.encode()) == at
    plain = Position({TP: 5})  # a bus without a cluster id: the first format, as before
    assert plain.encode().startswith("w1.") and Position.decode(plain.encode()) == plain

    def w2(body: str) -> str:
        return "w2." + base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")

    for bad in [
        w2("[]"),
        w2('{"bus":"","offsets":[]}'),
        w2('{"bus":"' + "x" * 65 + '","offsets":[]}'),
        w2('{"bus":1,"offsets":[]}'),
        w2('{"bus":"a","offsets":{}}'),
        w2('{"bus":"a","offsets":[],"more":1}'),
    ]:
        with pytest.raises(InvalidInput):
            Position.decode(bad)


class SlowToComeBack(SwappableBus):
    """The old broker is gone: asking which cluster it is times out (the new broker is not
    up yet), and the new one comes up just after, while librdkafka keeps fetching at the
    offsets the reader holds."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def list_topics(self, timeout: float) -> Any:
        if self.down:
            self.down = False
            self.swap([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])  # up just after the timeout
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))
        return super().list_topics(timeout)


def test_nothing_is_read_while_the_bus_is_unknown_after_the_broker_went_away() -> None:
    """After the broker went away, a read whose cluster check failed must not consume: the
    fetches at the old bus's offsets reach the new broker the moment it is up, and give its
    events at the wrong offsets under the old bus's name (a gap, then repeats once the swap
    is noticed)."""

    async def run() -> tuple[list[tuple[int, Position | None]], SlowToComeBack]:
        bus = SlowToComeBack()
        reader = KafkaBusReader(
            bus,  # type: ignore[arg-type]
            ThreadPoolExecutor(max_workers=1),
            bus=bus_id("cj-old"),
            clock=lambda: 0.0,
        )
        reader.start_at({TP: 8})
        bus.at = 8
        await reader.read(0)  # 108, 109
        reader.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN))
        bus.down = True
        got: list[tuple[int, Position | None]] = []
        for _ in range(3):
            records = await reader.read(0)
            at = reader.replaced()
            got += [(r.event.payload["n"], at) for r in records] or [(0, at)]
        await reader.close()
        return got, bus

    got, _ = asyncio.run(run())
    events = [n for n, _ in got if n]
    assert events == list(range(1, 13)), events  # the new bus, all of it, once
    first = next(i for i, (n, _) in enumerate(got) if n)
    assert got[first][1] == Position({TP: 0}, bus_id("cj-new"))  # noticed before its records


class FullThenSwapped:
    """A projection stream's reader: three records of the old bus (more than the stream
    holds unapplied), then, when read again, the swap and two records of the new bus."""

    def __init__(self) -> None:
        self.rounds = 0
        self.new_at: Position | None = None
        self.read_once = asyncio.Event()

    async def read(self, max_wait: float) -> Sequence[BusRecord]:
        self.rounds += 1
        if self.rounds == 1:
            self.read_once.set()
            return [BusRecord(*TP, o, event(100 + o)) for o in (10, 11, 12)]
        if self.rounds == 2:
            self.new_at = Position({TP: 0}, "new")
            return [BusRecord(*TP, 0, event(1)), BusRecord(*TP, 1, event(2))]
        await asyncio.sleep(0.01)
        return []

    def replaced(self) -> Position | None:
        at, self.new_at = self.new_at, None
        return at

    def lag(self) -> int:
        return 0

    async def close(self) -> None:
        pass


class SwappedApplied:
    """The event handler's progress: on the old bus first (behind the stream), then on the
    new one (the broker died and was swapped without draining)."""

    def __init__(self) -> None:
        self.calls = 0

    async def applied(self) -> Position:
        self.calls += 1
        if self.calls <= 2:  # the open, the first feed
            return Position({TP: 10}, "old")
        return Position({TP: 2}, "new")


def test_a_full_projection_stream_goes_on_after_a_swap() -> None:
    """A projection stream holding max_pending records when the bus is swapped reads no
    more; the handler's progress is then of the new bus (stale for the stream), so the held
    records are never taken as applied and the reader never gets to notice the swap: the
    stream stays silent for ever."""
    from services.query.service import ProjectionView
    from services.query.watch import ProjectionFeed, ProjectionItem

    class States:
        def __init__(self) -> None:
            self.views: dict[str, ProjectionView] = {}

        def validate(self, projection_type: str, aggregate_id: str | None) -> None:
            return None

        async def states(self, projection_type: str, ids: Sequence[str]) -> list[ProjectionView]:
            return [self.views[a] for a in ids if a in self.views]

        async def page_after(
            self, projection_type: str, after: str, limit: int
        ) -> list[ProjectionView]:
            return []

    async def run() -> list[Item]:
        reader = FullThenSwapped()
        states = States()

        class Opener:
            async def open(self, start: Position | None) -> tuple[FullThenSwapped, Position]:
                return reader, Position({TP: 10}, "old")

        hub = WatchHub(
            Opener(),
            max_watchers=1,
            max_lag=100,
            send_timeout=5.0,
            heartbeat=1000.0,
            projections=ProjectionFeed(states, SwappedApplied(), max_pending=2),
        )
        got: list[Item] = []
        arrived = asyncio.Event()

        async def send(item: Item) -> None:
            got.append(item)
            if isinstance(item, ProjectionItem):
                arrived.set()

        stop = asyncio.Event()
        task = asyncio.create_task(hub.watch_projection("sensor_state", "d", "", send, stop))
        await reader.read_once.wait()
        states.views["d"] = ProjectionView("p-d", "sensor_state", "d", {"n": 2}, "e2", T, T)
        try:
            await asyncio.wait_for(arrived.wait(), 3.0)
        finally:
            stop.set()
            await task
        return got

    got = asyncio.run(run())
    [item] = [i for i in got if isinstance(i, ProjectionItem)]
    assert item.view.state == {"n": 2}
