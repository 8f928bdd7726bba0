"""What the time-series cores need from storage (PostgreSQL adapters: points_store.py and
series_reader.py; fakes in tests/unit/fakes.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.tsdb.series import Aggregate, Plan, Point, SeriesQuery


class PointWriter(Protocol):
    """Used by one consumer loop (not safe for concurrent use).

    ``write`` stores the points in one transaction together with the minute and hour
    rollups and latest values they touch, and returns how many points were new. Writing
    the same points again stores nothing twice and leaves the rollups as they are, so the
    loop may commit its offsets once it returned. Raises Unavailable while the database is
    down (nothing written); InvalidInput when the database refuses a value (nothing
    written)."""

    def write(self, points: Sequence[Point]) -> int: ...


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    agg: Aggregate


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

    async def buckets(self, q: SeriesQuery, plan: Plan) -> list[Bucket]: ...

    async def latest(self, device: str) -> list[Latest]: ...

    async def series(self, device_prefix: str, after: tuple[str, str], limit: int) -> list[Series]:
        """Series ordered by (device, metric), those after ``after`` only."""
        ...
