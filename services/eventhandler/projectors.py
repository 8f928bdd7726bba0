"""Projectors: pure functions from an event to projection updates, found by event_type."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.core.events import Event


@dataclass(frozen=True, slots=True)
class ProjectionUpdate:
    projection_type: str
    aggregate_id: str
    state: dict[str, Any]
    event_id: str
    event_time: datetime

    @property
    def key(self) -> tuple[str, str]:
        return (self.projection_type, self.aggregate_id)

    @property
    def version(self) -> tuple[datetime, str]:
        """Newer-wins order: (event_time, event_id); UUIDv7 ids break ties by arrival."""
        return (self.event_time, self.event_id)


Projector = Callable[[Event], Iterable[ProjectionUpdate]]


class Registry:
    """Maps event types to projectors: an exact type, or a prefix such as ``sensor.*``."""

    def __init__(self) -> None:
        self._exact: dict[str, list[Projector]] = {}
        self._prefix: dict[str, list[Projector]] = {}

    def register(self, pattern: str, projector: Projector) -> None:
        if pattern.endswith(".*"):
            self._prefix.setdefault(pattern[:-1], []).append(projector)
        else:
            self._exact.setdefault(pattern, []).append(projector)

    def projectors_for(self, event_type: str) -> list[Projector]:
        found = list(self._exact.get(event_type, ()))
        for prefix, projectors in self._prefix.items():
            if event_type.startswith(prefix):
                found.extend(projectors)
        return found


def sensor_state(event: Event) -> Iterable[ProjectionUpdate]:
    """Latest reading per device."""
    yield ProjectionUpdate(
        "sensor_state", event.aggregate_id, dict(event.payload), event.event_id, event.event_time
    )


def user_session(event: Event) -> Iterable[ProjectionUpdate]:
    """Last login per user."""
    state = dict(event.payload)
    state["last_login_at"] = event.event_time.isoformat()
    yield ProjectionUpdate(
        "user_session", event.aggregate_id, state, event.event_id, event.event_time
    )


def device_health(event: Event) -> Iterable[ProjectionUpdate]:
    """A device's health from the inference service's ai.anomaly events (issue 18): its
    latest anomaly's score (``last_score``: the last ANOMALY's score, not the last reading's;
    that is in the inference model status API) and time, and how many anomalies it had in
    the 24 h up to that anomaly (the query service reads it as 0 once that is 24 h old). A device
    without anomalies has no row (read it as "ok"). The stored status stays "anomalous";
    the query service reads it as "ok" once the last anomaly is older than
    CJ_QUERY_DEVICE_HEALTH_WINDOW (services/query/service.py)."""
    p = event.payload
    yield ProjectionUpdate(
        "device_health",
        event.aggregate_id,
        {
            "status": "anomalous",
            "last_score": float(p["score"]),
            "last_anomaly_at": event.event_time.isoformat(),
            "anomalies_24h": int(p.get("device_anomalies_24h", 1)),
            "last_metric": str(p.get("metric", "")),
            "last_source_event_id": str(p.get("source_event_id", "")),
        },
        event.event_id,
        event.event_time,
    )


# What default_registry() writes; `cornjacket replay` rebuilds these.
PROJECTION_TYPES = ("sensor_state", "user_session", "device_health")


def default_registry() -> Registry:
    registry = Registry()
    registry.register("sensor.reading", sensor_state)
    registry.register("user.login", user_session)
    registry.register("ai.anomaly", device_health)
    return registry


def newest_per_key(updates: Sequence[ProjectionUpdate]) -> list[ProjectionUpdate]:
    """Collapse a batch to the newest update per projection row (one upsert per row)."""
    best: dict[tuple[str, str], ProjectionUpdate] = {}
    for u in updates:
        cur = best.get(u.key)
        if cur is None or u.version > cur.version:
            best[u.key] = u
    return list(best.values())
