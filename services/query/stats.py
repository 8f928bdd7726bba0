"""The console overview's figures (issue 19): ingest rate, outbox depth, consumer lag and
dead letters, gathered from their owners and cached briefly. No transport code here.

Why a cache: every open console asks every 5 s; with it the owners see at most one
question per ``max_age`` from each query process, whatever the number of browsers. One
gathering runs at a time; callers arriving meanwhile take its result.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from services.core.clock import Clock
from services.core.errors import Unavailable


@dataclass(frozen=True, slots=True)
class IngestFigures:
    accepted_last_minute: int = 0
    accepted_capped: bool = False
    outbox_depth: int = 0
    outbox_capped: bool = False
    outbox_oldest_age: float = 0.0


@dataclass(frozen=True, slots=True)
class GroupLagView:
    group: str
    lag: int | None  # None: the bus did not answer


@dataclass(frozen=True, slots=True)
class Stats:
    measured_at: datetime
    ingest: IngestFigures
    consumer_lag: list[GroupLagView]
    dead_letters_pending: int
    deliveries_failed: int
    unavailable: list[str] = field(default_factory=list)

    @property
    def ingest_rate(self) -> float:
        return self.ingest.accepted_last_minute / 60.0


class IngestSource(Protocol):
    """Ingestion's figures; raises Unavailable when ingestion or its database does not
    answer. Safe for concurrent use."""

    async def figures(self) -> IngestFigures: ...


class CountSource(Protocol):
    """One count from an owner (pending dead letters, failed deliveries); raises
    Unavailable. Safe for concurrent use."""

    async def count(self) -> int: ...


class LagSource(Protocol):
    """Each consumer group's lag; never raises (an unanswered group has lag None)."""

    async def lags(self) -> list[GroupLagView]: ...


class StatsService:
    def __init__(
        self,
        ingest: IngestSource,
        counts: dict[str, tuple[str, CountSource]],
        lag: LagSource,
        clock: Clock,
        *,
        max_age: float = 1.0,
    ) -> None:
        """``counts`` maps a figure ("dead_letters_pending", "deliveries_failed") to its
        owner's name (reported when it does not answer) and source."""
        self._ingest = ingest
        self._counts = counts
        self._lag = lag
        self._clock = clock
        self._max_age = timedelta(seconds=max_age)
        self._cached: Stats | None = None
        self._lock = asyncio.Lock()

    def _fresh(self) -> Stats | None:
        cached = self._cached
        if cached is not None and self._clock.now() - cached.measured_at < self._max_age:
            return cached
        return None

    async def stats(self) -> Stats:
        fresh = self._fresh()
        if fresh is not None:
            return fresh
        async with self._lock:
            fresh = self._fresh()  # gathered while this caller waited for the lock
            if fresh is not None:
                return fresh
            self._cached = await self._gather()
            return self._cached

    async def _gather(self) -> Stats:
        measured_at = self._clock.now()
        names = list(self._counts)
        ingest, lags, *counts = await asyncio.gather(
            self._ingest.figures(),
            self._lag.lags(),
            *(self._counts[n][1].count() for n in names),
            return_exceptions=True,
        )
        unavailable: list[str] = []

        def taken(value: object, owner: str) -> bool:
            if isinstance(value, Unavailable):
                unavailable.append(owner)
                return False
            if isinstance(value, BaseException):
                raise value
            return True

        figures = ingest if taken(ingest, "ingestion") else IngestFigures()
        got: dict[str, int] = {}
        for name, value in zip(names, counts, strict=True):
            if taken(value, self._counts[name][0]) and isinstance(value, int):
                got[name] = value
        if isinstance(lags, BaseException):
            raise lags
        assert isinstance(lags, list)
        return Stats(
            measured_at=measured_at,
            ingest=figures if isinstance(figures, IngestFigures) else IngestFigures(),
            consumer_lag=list(lags),
            dead_letters_pending=got.get("dead_letters_pending", 0),
            deliveries_failed=got.get("deliveries_failed", 0),
            unavailable=sorted(set(unavailable)),
        )
