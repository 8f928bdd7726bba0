"""Event handler core: fold a batch of events into projections, isolating poison events."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from services.core.clock import Clock
from services.core.errors import InvalidInput
from services.core.events import Event
from services.eventhandler.projectors import ProjectionUpdate, Registry, newest_per_key

log = logging.getLogger(__name__)

# Poison-event retries (DESIGN.md section 5): immediately, after 1 s, after 2 s.
RETRY_DELAYS: tuple[float, ...] = (0.0, 1.0, 2.0)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    event_id: str | None
    raw: bytes
    error: str


class ProjectionStore(Protocol):
    """Writes projections and dead letters. Used from one thread.

    ``apply`` upserts every update and records every dead letter in ONE transaction, so a
    batch is either fully applied or not at all; an update older than the stored row by
    (event_time, event_id) changes nothing, which makes re-delivery harmless. A dead letter
    repeating one already recorded (same consumer and event) adds no row.
    Raises Unavailable when the database cannot be used, InvalidInput (nothing written) when
    it refuses a value of an update (a NUL in a string, an id it cannot read). Dead letters
    are always storable: the adapter cleans what the database could refuse in them.
    """

    def apply(
        self, updates: Sequence[ProjectionUpdate], dead: Sequence[DeadLetter], now: datetime
    ) -> int: ...


@dataclass(slots=True)
class BatchOutcome:
    events: int = 0
    skipped: int = 0
    updated: int = 0
    dead: list[DeadLetter] = field(default_factory=list)


class EventHandler:
    def __init__(
        self,
        store: ProjectionStore,
        registry: Registry,
        clock: Clock,
        *,
        consumer: str = "event-handler",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._registry = registry
        self._clock = clock
        self._sleep = sleep
        self.consumer = consumer

    def _project(self, event: Event) -> list[ProjectionUpdate]:
        updates: list[ProjectionUpdate] = []
        for projector in self._registry.projectors_for(event.event_type):
            updates.extend(projector(event))
        return updates

    def _project_with_retries(
        self, event: Event, raw: bytes
    ) -> list[ProjectionUpdate] | DeadLetter:
        error = ""
        for delay in RETRY_DELAYS:
            if delay:
                self._sleep(delay)
            try:
                return self._project(event)
            except Exception as e:  # a projector bug or bad payload: poison, not outage
                error = f"{type(e).__name__}: {e}"
                log.warning("projector failed", extra={"event_id": event.event_id, "error": error})
        return DeadLetter(event.event_id, raw, f"projection failed after retries: {error}")

    def handle(self, items: Sequence[tuple[Event | None, bytes, str]]) -> BatchOutcome:
        """Apply a polled batch. Items are (decoded event or None, raw bytes, decode error).

        Raises Unavailable if the database is down; the caller must not commit offsets then.
        """
        out = BatchOutcome(events=len(items))
        projected: list[tuple[Event, bytes, list[ProjectionUpdate]]] = []
        for event, raw, decode_error in items:
            if event is None:
                out.dead.append(DeadLetter(None, raw, f"undecodable message: {decode_error}"))
                continue
            if not self._registry.projectors_for(event.event_type):
                out.skipped += 1
                continue
            result = self._project_with_retries(event, raw)
            if isinstance(result, DeadLetter):
                out.dead.append(result)
            elif result:
                projected.append((event, raw, result))
        updates = [u for _, _, event_updates in projected for u in event_updates]
        if not updates and not out.dead:
            return out
        now = self._clock.now()
        try:
            out.updated = self._store.apply(newest_per_key(updates), out.dead, now)
        except InvalidInput:
            if not updates:
                raise  # the store promises dead letters are storable: a bug, not poison
            out.updated = self._apply_each(projected, out.dead, now)
        return out

    def _apply_each(
        self,
        projected: Sequence[tuple[Event, bytes, list[ProjectionUpdate]]],
        dead: list[DeadLetter],
        now: datetime,
    ) -> int:
        """The database refused a value somewhere in the batch (another producer's NUL,
        say): apply it event by event, so the refused events become dead letters and the
        others are applied. Newer-wins makes the result the batch's own; if the database
        goes away half-way, Unavailable makes the caller retry the whole batch (harmless)."""
        updated = 0
        for event, raw, updates in projected:
            try:
                updated += self._store.apply(newest_per_key(updates), [], now)
            except InvalidInput as e:
                dead.append(
                    DeadLetter(
                        event.event_id, raw, f"the database refused a value of this event: {e}"
                    )
                )
        if dead:
            self._store.apply([], dead, now)
        return updated
