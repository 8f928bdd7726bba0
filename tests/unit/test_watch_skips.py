"""A watch stream reads again what the broker skipped (ADR 18, "The embedded broker's skipped
batches"): its reader is a consumer of its own, at the end of the bus, exactly where the
embedded broker can make a later record batch readable before an earlier one."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from confluent_kafka import TopicPartition

from services.core.events import Event
from services.infra.codec import encode_event
from services.query.watch_bus import KafkaBusReader

T = datetime(2026, 12, 2, tzinfo=UTC)


class Msg:
    def __init__(self, offset: int) -> None:
        self._offset = offset

    def topic(self) -> str:
        return "sensor-events"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        event_id = f"00000000-0000-7000-8000-{self._offset:012d}"
        return encode_event(Event(event_id, "sensor.reading", "d", T, T, {"n": 1}))


class LateBatch:
    """Offsets 0..9 of one partition; 3-5 are readable from the third fetch on."""

    def __init__(self) -> None:
        self.at = 0
        self.fetches = 0
        self.seeks: list[int] = []

    def consume(self, n: int, timeout: float) -> list[Msg]:
        self.fetches += 1
        batch = [o for o in range(self.at, 10) if not (3 <= o <= 5) or self.fetches > 2][:4]
        if batch:
            self.at = batch[-1] + 1
        return [Msg(o) for o in batch]

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append(tp.offset)
        self.at = tp.offset

    def list_topics(self, timeout: float) -> Any:  # the reader's periodic check: one bus
        return SimpleNamespace(
            cluster_id=None,
            topics={"sensor-events": SimpleNamespace(error=None, partitions={0: None})},
        )

    def close(self) -> None:
        pass


def test_a_watch_reads_a_skipped_batch_before_going_past_it() -> None:
    async def read_all() -> tuple[list[int], Any]:
        consumer = LateBatch()
        reader = KafkaBusReader(consumer, ThreadPoolExecutor(max_workers=1))  # type: ignore[arg-type]
        reader.start_at({("sensor-events", 0): 0})
        offsets: list[int] = []
        for _ in range(10):
            offsets += [r.offset for r in await reader.read(0.0)]
        await reader.close()
        return offsets, consumer

    offsets, consumer = asyncio.run(read_all())
    assert offsets == list(range(10))
    assert consumer.seeks and set(consumer.seeks) == {3}
