"""Query core: validates paging and asks the read model. Read-only by construction."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from services.core.clock import Clock, SystemClock
from services.core.errors import InvalidInput, NotFound

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True, slots=True)
class ProjectionView:
    projection_id: str
    projection_type: str
    aggregate_id: str
    state: dict[str, Any]
    last_event_id: str
    last_event_timestamp: datetime
    updated_at: datetime


Views = list[ProjectionView]  # (a name: the classes below have a method called list)


@dataclass(frozen=True, slots=True)
class Page:
    items: list[ProjectionView]
    total: int
    limit: int
    offset: int


class ProjectionReader(Protocol):
    """Read access to projections; safe for concurrent use; raises Unavailable."""

    async def get(self, projection_type: str, aggregate_id: str) -> ProjectionView | None: ...

    async def list(
        self, projection_type: str, limit: int, offset: int
    ) -> tuple[list[ProjectionView], int]: ...

    async def get_many(self, projection_type: str, aggregate_ids: Sequence[str]) -> Views:
        """Those of the aggregates that have a projection of the type (any order)."""
        ...

    async def list_after(self, projection_type: str, after: str, limit: int) -> Views:
        """Up to ``limit`` projections of the type with aggregate_id > ``after``, in order."""
        ...


HEALTH_WINDOW = timedelta(minutes=15)


class QueryService:
    def __init__(
        self,
        reader: ProjectionReader,
        *,
        clock: Clock | None = None,
        health_window: timedelta = HEALTH_WINDOW,
    ) -> None:
        self._reader = reader
        self._clock = clock or SystemClock()
        self._health_window = health_window

    def _as_of_now(self, view: ProjectionView) -> ProjectionView:
        """device_health (issue 18) is anomalous only while its last anomaly is within the
        window: computed at read time, since a projection moves only with events."""
        if view.projection_type != "device_health" or view.state.get("status") != "anomalous":
            return view
        try:
            last = datetime.fromisoformat(str(view.state.get("last_anomaly_at")))
        except ValueError:
            return view
        now = self._clock.now()
        if last.tzinfo is None or last + self._health_window > now:
            return view
        state = {**view.state, "status": "ok"}
        # anomalies_24h counts the 24 h up to the last anomaly; once that is a day old,
        # none is left in the last 24 h.
        if last + timedelta(days=1) <= now:
            state["anomalies_24h"] = 0
        return replace(view, state=state)

    @staticmethod
    def _check_type(projection_type: str) -> None:
        if not projection_type:
            raise InvalidInput("projection_type is required")
        if not _TYPE_RE.match(projection_type):
            raise InvalidInput(
                f"projection_type {projection_type[:80]!r} must be lowercase letters, digits "
                "and '_' (at most 64), e.g. 'sensor_state'"
            )

    @staticmethod
    def _check_aggregate(aggregate_id: str) -> None:
        if not aggregate_id:
            raise InvalidInput("aggregate_id is required")
        if len(aggregate_id) > 256 or any(ord(c) < 32 or ord(c) == 127 for c in aggregate_id):
            raise InvalidInput(
                "aggregate_id must be at most 256 characters without control characters"
            )

    def validate(self, projection_type: str, aggregate_id: str | None) -> None:
        """InvalidInput for a type or (if given) an aggregate id that ``get`` refuses."""
        self._check_type(projection_type)
        if aggregate_id is not None:
            self._check_aggregate(aggregate_id)

    async def get(self, projection_type: str, aggregate_id: str) -> ProjectionView:
        self.validate(projection_type, aggregate_id)
        view = await self._reader.get(projection_type, aggregate_id)
        if view is None:
            raise NotFound(f"no {projection_type} projection for aggregate {aggregate_id!r}")
        return self._as_of_now(view)

    async def list(self, projection_type: str, limit: int | None, offset: int) -> Page:
        self._check_type(projection_type)
        limit = DEFAULT_LIMIT if limit is None else limit
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
        if offset < 0:
            raise InvalidInput(f"offset must be 0 or more, got {offset}")
        items, total = await self._reader.list(projection_type, limit, offset)
        return Page([self._as_of_now(v) for v in items], total, limit, offset)

    # --- for projection streams (services/query/watch.py: ProjectionSource) ---------------
    async def states(self, projection_type: str, aggregate_ids: Sequence[str]) -> Views:
        views = await self._reader.get_many(projection_type, aggregate_ids)
        return [self._as_of_now(v) for v in views]

    async def page_after(self, projection_type: str, after: str, limit: int) -> Views:
        views = await self._reader.list_after(projection_type, after, limit)
        return [self._as_of_now(v) for v in views]
