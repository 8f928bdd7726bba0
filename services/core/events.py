"""The event envelope as a plain value, and the rules every service shares about it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.core.errors import InvalidInput, Unavailable

SCHEMA_VERSION = 1

# "ai": the inference service's ai.* events (issue 18), the only source allowed to send them.
SOURCES = frozenset({"http", "grpc", "mqtt", "ai"})
RESERVED_PREFIXES = {"ai.": "ai"}  # event type prefix -> the one source that may send it

# Topic routing by event_type prefix (DESIGN.md section 3).
TOPIC_SENSOR = "sensor-events"
TOPIC_USER = "user-actions"
TOPIC_SYSTEM = "system-events"
ALL_TOPICS: tuple[str, ...] = (TOPIC_SENSOR, TOPIC_USER, TOPIC_SYSTEM)


def topic_for(event_type: str) -> str:
    """Return the bus topic an event type is published to."""
    prefix = event_type.split(".", 1)[0]
    if prefix == "sensor":
        return TOPIC_SENSOR
    if prefix == "user":
        return TOPIC_USER
    return TOPIC_SYSTEM


@dataclass(frozen=True, slots=True)
class Metadata:
    trace_id: str = ""
    source: str = "grpc"
    schema_version: int = SCHEMA_VERSION
    # The span that accepted the event, when tracing is on: later hops are its children.
    span_id: str = ""
    # Who sent it: the verified token's subject (Envoy sets x-cj-subject from it), or the
    # MQTT gateway's name; empty when the edge runs without authentication.
    subject: str = ""


@dataclass(frozen=True, slots=True)
class Event:
    """An accepted event; identical in the outbox, the event store and on the bus."""

    event_id: str
    event_type: str
    aggregate_id: str
    event_time: datetime
    ingested_at: datetime
    payload: dict[str, Any]
    metadata: Metadata = field(default_factory=Metadata)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored in the outbox row (span_id only when tracing set it)."""
        metadata: dict[str, Any] = {
            "trace_id": self.metadata.trace_id,
            "source": self.metadata.source,
            "schema_version": self.metadata.schema_version,
        }
        if self.metadata.span_id:
            metadata["span_id"] = self.metadata.span_id
        if self.metadata.subject:
            metadata["subject"] = self.metadata.subject
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "aggregate_id": self.aggregate_id,
            "event_time": self.event_time.isoformat(),
            "ingested_at": self.ingested_at.isoformat(),
            "payload": self.payload,
            "metadata": metadata,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        meta = data.get("metadata") or {}
        return cls(
            event_id=str(data["event_id"]),
            event_type=str(data["event_type"]),
            aggregate_id=str(data["aggregate_id"]),
            event_time=datetime.fromisoformat(data["event_time"]),
            ingested_at=datetime.fromisoformat(data["ingested_at"]),
            payload=dict(data["payload"]),
            metadata=Metadata(
                trace_id=str(meta.get("trace_id", "")),
                source=str(meta.get("source", "grpc")),
                schema_version=int(meta.get("schema_version", SCHEMA_VERSION)),
                span_id=str(meta.get("span_id", "")),
                subject=str(meta.get("subject", "")),
            ),
        )


@dataclass(frozen=True, slots=True)
class Publication:
    """Where the broker put an event: topic, partition and offset."""

    event_id: str
    topic: str
    partition: int
    offset: int


class PartlyPublished(Unavailable):
    """A publish in which some messages were not acknowledged (a broker or partition outage,
    a timeout): ``results`` has one entry per event, in order: a Publication for each one
    the broker acknowledged, an InvalidInput for one refused for good, an Unavailable for
    one not acknowledged (it may or may not be on the bus)."""

    def __init__(
        self, message: str, results: Sequence[Publication | InvalidInput | Unavailable]
    ) -> None:
        super().__init__(message)
        self.results = list(results)
