"""The event handler's side of lineage: what an event did to projections, computed from the
projectors and the current rows (nothing is recorded on the hot path for it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.core.events import Event
from services.eventhandler.projectors import Registry


@dataclass(frozen=True, slots=True)
class ProjectionRow:
    projection_type: str
    aggregate_id: str
    last_event_id: str
    last_event_timestamp: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ProjectionEffect:
    projection_type: str
    aggregate_id: str
    status: str  # current | superseded | pending
    current_event_id: str = ""
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeadLetterRef:
    dlq_id: str
    consumer: str
    status: str
    error_message: str
    failed_at: datetime


class EffectsStore(Protocol):
    def rows(self, keys: Sequence[tuple[str, str]]) -> list[ProjectionRow]: ...

    def dead_letters(self, event_id: str) -> list[DeadLetterRef]: ...


def effects(
    event: Event, registry: Registry, store: EffectsStore
) -> tuple[list[ProjectionEffect], list[DeadLetterRef]]:
    """Each projection row the event maps to: ``current`` if the row reflects this event,
    ``superseded`` if the row reflects a newer one (whether or not this one was applied
    first: newer-wins makes both end the same), ``pending`` if it has not been applied."""
    keys: list[tuple[str, str]] = []
    for projector in registry.projectors_for(event.event_type):
        try:
            keys.extend((u.projection_type, u.aggregate_id) for u in projector(event))
        # A poison event (B112, continue on error): its dead letter tells the story.
        except Exception:  # nosec B112
            continue
    found = {(r.projection_type, r.aggregate_id): r for r in store.rows(keys)}
    out = []
    for key in dict.fromkeys(keys):
        row = found.get(key)
        if row is None:
            out.append(ProjectionEffect(*key, "pending"))
        elif row.last_event_id == event.event_id:
            out.append(ProjectionEffect(*key, "current", row.last_event_id, row.updated_at))
        elif (row.last_event_timestamp, row.last_event_id) > (event.event_time, event.event_id):
            out.append(ProjectionEffect(*key, "superseded", row.last_event_id, row.updated_at))
        else:
            out.append(ProjectionEffect(*key, "pending", row.last_event_id, row.updated_at))
    return out, store.dead_letters(event.event_id)
