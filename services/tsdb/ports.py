"""What the time-series cores need from storage (PostgreSQL adapters: points_store.py and
series_reader.py; fakes in tests/unit/fakes.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from services.core.errors import Unavailable
from services.tsdb.series import Aggregate, Plan, Point, SeriesQuery


class PartitionGone(Unavailable):
    """A day partition the writer knew of went away while writing (retention dropped it):
    nothing was written and the writer forgot the partitions it knew, so a retry makes
    those it needs again. Unavailable if not handled (the loop retries later)."""


class PointWriter(Protocol):
    """Used by one consumer loop (not safe for concurrent use).

    ``write`` stores the points in one transaction together with the minute and hour
    rollups and latest values they touch, and returns how many points were new. Writing
    the same points again stores nothing twice and leaves the rollups as they are, so the
    loop may commit its offsets once it returned. Raises Unavailable while the database is
    down (nothing written); PartitionGone when a day's partition went away under it
    (nothing written); InvalidInput when the database refuses a value (nothing
    written)."""

    def write(self, points: Sequence[Point]) -> int: ...


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    agg: Aggregate


@dataclass(frozen=True, slots=True)
class Buckets:
    """A series answer as columns: bucket i starts at origin + index[i] x step. Only the
    columns of the aggregates asked for are filled (``avg``: sum / count of each bucket)."""

    origin: datetime
    step: timedelta
    index: list[int] = field(default_factory=list)
    count: list[int] = field(default_factory=list)
    sum: list[float] = field(default_factory=list)
    min: list[float] = field(default_factory=list)
    max: list[float] = field(default_factory=list)
    first: list[float] = field(default_factory=list)
    last: list[float] = field(default_factory=list)
    avg: list[float] = field(default_factory=list)

    def rows(self) -> list[Bucket]:
        return [
            Bucket(
                self.origin + i * self.step,
                Aggregate(n, s, lo, hi, f, la),
            )
            for i, n, s, lo, hi, f, la in zip(
                self.index,
                self.count,
                self.sum,
                self.min,
                self.max,
                self.first,
                self.last,
                strict=True,
            )
        ]


@dataclass(frozen=True, slots=True)
class Latest:
    metric: str
    time: datetime
    value: float


@dataclass(frozen=True, slots=True)
class Series:
    device: str
    metric: str
    last_time: datetime


class SeriesReader(Protocol):
    """Safe for concurrent use. Raises Unavailable while the database is down."""

    async def buckets(self, q: SeriesQuery, plan: Plan) -> Buckets: ...

    async def latest(self, device: str, limit: int) -> list[Latest]:
        """The device's latest values, the first ``limit`` by metric name."""
        ...

    async def series(self, device_prefix: str, after: tuple[str, str], limit: int) -> list[Series]:
        """Series ordered by (device, metric), those after ``after`` only."""
        ...
