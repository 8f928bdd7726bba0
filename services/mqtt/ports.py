"""What the MQTT gateway core needs from the outside; adapters implement these."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class EventRequest:
    """One event as a device sent it; ingestion validates it like any other caller's."""

    event_type: str
    aggregate_id: str
    payload: dict[str, Any]
    idempotency_key: str
    event_time: datetime | None = None
    trace_id: str = ""


@dataclass(frozen=True, slots=True)
class Outcome:
    """Ingestion's answer for one event: accepted, duplicate or rejected (with why)."""

    status: str
    event_id: str = ""
    error: str = ""


class Ingestor(Protocol):
    """Hands events to ingestion. Returns only after they are committed (or rejected).

    ``principal`` names whose events they are (``mqtt:<user>``): ingestion records it as
    the events' subject and scopes their idempotency keys by it. Raises ``Unavailable``
    when nothing could be confirmed; the same requests (same idempotency keys) may then
    be sent again without creating a second event. Safe for concurrent calls.
    """

    async def ingest(self, events: Sequence[EventRequest], principal: str) -> list[Outcome]: ...


class Feedback(Protocol):
    """Publishes a JSON message to whoever subscribed to ``topic`` (best effort)."""

    async def send(self, topic: str, body: dict[str, Any]) -> None: ...
