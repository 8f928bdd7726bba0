"""Rebuild projections from the event store: fold every stored event, in event_time order,
through the live projectors into a table aside, then swap the result in.

The live handler keeps running meanwhile. The swap merges newer-wins: a live row whose last
event is newer than the rebuilt one (an event applied while the rebuild ran) is kept; on a
tie, or when the rebuilt row is newer, the rebuilt row wins. Readers see the old rows until
the swap commits, never a half-built projection.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from services.core.clock import FixedClock
from services.core.events import Event
from services.eventhandler.projectors import ProjectionUpdate, Registry, newest_per_key


@dataclass(frozen=True, slots=True)
class RebuildReport:
    events: int
    rows: int
    seconds: float
    differences: int  # rows that differ from the live projection (before any swap)
    swapped: bool

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


class EventSource(Protocol):
    def count(self) -> int: ...

    def batches(self, size: int) -> Iterable[Sequence[Event]]:
        """Every stored event, in (event_time, event_id) order, ``size`` at a time."""
        ...


class RebuildTarget(Protocol):
    def begin(self, projection_types: Sequence[str]) -> None:
        """Empty the aside table (and hold the rebuild lock: one rebuild at a time)."""
        ...

    def write(self, updates: Sequence[ProjectionUpdate], clock: FixedClock) -> None: ...

    def differences(self, projection_types: Sequence[str]) -> int: ...

    def swap(self, projection_types: Sequence[str]) -> int:
        """Merge the aside rows into the live table in one transaction; return its rows."""
        ...


Progress = Callable[[int, int, float], None]  # done, total, seconds so far
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def rebuild(
    source: EventSource,
    target: RebuildTarget,
    registry: Registry,
    projection_types: Sequence[str],
    *,
    batch_size: int = 5000,
    swap: bool = True,
    progress: Progress | None = None,
    now: Callable[[], float] = time.monotonic,
) -> RebuildReport:
    total = source.count()
    target.begin(projection_types)
    wanted = set(projection_types)
    # The replay clock: a rebuilt row's updated_at is the ingestion time of the event that
    # wrote it, as if the handler had applied it then, not the time of the rebuild.
    clock = FixedClock(_EPOCH)
    t0 = now()
    done = 0
    for batch in source.batches(batch_size):
        updates: list[ProjectionUpdate] = []
        for event in batch:
            for projector in registry.projectors_for(event.event_type):
                updates.extend(u for u in projector(event) if u.projection_type in wanted)
        if batch:
            clock.set(batch[-1].ingested_at)
        if updates:
            target.write(newest_per_key(updates), clock)
        done += len(batch)
        if progress:
            progress(done, total, now() - t0)
    differences = target.differences(projection_types)
    rows = target.swap(projection_types) if swap else 0
    return RebuildReport(done, rows, now() - t0, differences, swap)


def render_progress(done: int, total: int, seconds: float, width: int = 30) -> str:
    """One line: bar, counts, rate and ETA."""
    frac = done / total if total else 1.0
    rate = done / seconds if seconds > 0 else 0.0
    eta = (total - done) / rate if rate > 0 else 0.0
    bar = "#" * int(frac * width)
    return (
        f"[{bar:<{width}}] {frac * 100:5.1f}%  {done:,}/{total:,} events  "
        f"{rate:,.0f} ev/s  ETA {eta:,.0f}s"
    )
