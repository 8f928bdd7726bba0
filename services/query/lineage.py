"""Lineage core: "where is event X", as hops gathered from the services owning each part."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from services.core.errors import InvalidInput, NotFound, Unavailable
from services.core.events import Event


@dataclass(frozen=True, slots=True)
class PublicationView:
    topic: str
    partition: int
    offset: int
    published_at: datetime


@dataclass(frozen=True, slots=True)
class RecordView:
    """Ingestion's answer."""

    event: Event
    state: str  # outbox | stored
    stored_at: datetime | None = None
    retry_count: int = 0
    last_error: str = ""
    publications: list[PublicationView] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class EffectView:
    projection_type: str
    aggregate_id: str
    status: str  # current | superseded | pending
    current_event_id: str = ""
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeadLetterView:
    dlq_id: str
    consumer: str
    status: str
    error_message: str
    failed_at: datetime


@dataclass(frozen=True, slots=True)
class WebhookView:
    delivery_id: str
    rule_id: str
    target_url: str
    status: str  # pending | delivered | failed | discarded | suppressed
    attempts: int
    last_error: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Hop:
    stage: str
    status: str  # done | pending | superseded | failed | unknown
    at: datetime | None
    detail: str


class Records(Protocol):
    async def record(self, event_id: str) -> RecordView | None:
        """Raises Unavailable when ingestion cannot be asked."""
        ...


class Effects(Protocol):
    async def effects(self, event: Event) -> tuple[list[EffectView], list[DeadLetterView]]:
        """Raises Unavailable when the event handler cannot be asked."""
        ...


class Webhooks(Protocol):
    async def deliveries(self, event_id: str) -> list[WebhookView]:
        """Raises Unavailable when the action orchestrator cannot be asked."""
        ...


@dataclass(frozen=True, slots=True)
class AnomalyView:
    """An ai.anomaly the inference service raised for an event (issue 18)."""

    anomaly_event_id: str  # empty until ingestion accepted it
    metric: str
    score: float
    threshold: float
    event_time: datetime


class Anomalies(Protocol):
    async def caused_by(self, event_id: str) -> list[AnomalyView]:
        """Raises Unavailable when the inference service cannot be asked."""
        ...


class LineageService:
    def __init__(
        self,
        records: Records,
        effects: Effects,
        webhooks: Webhooks,
        anomalies: Anomalies | None = None,
    ) -> None:
        self._records = records
        self._effects = effects
        self._webhooks = webhooks
        self._anomalies = anomalies  # None: inference is off (CJ_FEATURE_INFERENCE)

    async def lineage(self, event_id: str) -> tuple[Event, list[Hop]]:
        try:
            uuid.UUID(event_id)
        except ValueError:
            raise InvalidInput(f"event_id {event_id[:80]!r} is not a UUID") from None
        record = await self._records.record(event_id)
        if record is None:
            raise NotFound(f"no event {event_id}: ingestion never accepted it")
        ev = record.event
        trace = f", trace_id {ev.metadata.trace_id}" if ev.metadata.trace_id else ""
        hops = [Hop("accepted", "done", ev.ingested_at, f"via {ev.metadata.source}{trace}")]
        if record.state == "outbox":
            why = (
                f"; {record.retry_count} failed attempt(s), last: {record.last_error}"
                if (record.retry_count)
                else ""
            )
            hops.append(Hop("outbox", "pending", None, "waiting for the relay" + why))
            hops.append(Hop("published", "pending", None, "not yet"))
        else:
            hops.append(Hop("event_store", "done", record.stored_at, "appended"))
            for p in record.publications:
                hops.append(
                    Hop(
                        "published",
                        "done",
                        p.published_at,
                        f"{p.topic} partition {p.partition} offset {p.offset}",
                    )
                )
            if not record.publications:
                hops.append(
                    Hop("published", "done", record.stored_at, "relayed (position not recorded)")
                )
        hops += await self._projection_hops(ev)
        hops += await self._webhook_hops(ev)
        hops += await self._anomaly_hops(ev)
        return ev, hops

    async def _anomaly_hops(self, ev: Event) -> list[Hop]:
        """Both directions of issue 18's link: the anomalies a reading caused, and the
        reading an ai.anomaly event was raised for."""
        hops: list[Hop] = []
        if ev.event_type == "ai.anomaly" and ev.payload.get("source_event_id"):
            hops.append(
                Hop(
                    "caused_by",
                    "done",
                    ev.event_time,
                    f"reading {ev.payload['source_event_id']} "
                    f"({ev.payload.get('metric', '')}, score {ev.payload.get('score', '')})",
                )
            )
        if self._anomalies is None or not ev.event_type.startswith("sensor."):
            return hops
        try:
            found = await self._anomalies.caused_by(ev.event_id)
        except Unavailable as e:
            return [*hops, Hop("anomaly", "unknown", None, f"inference unreachable: {e}")]
        for a in found:
            what = f"{a.metric}: score {a.score:.3f} >= {a.threshold:g}"
            if a.anomaly_event_id:
                hops.append(
                    Hop(
                        "anomaly", "done", a.event_time, f"ai.anomaly {a.anomaly_event_id} ({what})"
                    )
                )
            else:
                hops.append(
                    Hop("anomaly", "pending", None, f"ai.anomaly not yet accepted ({what})")
                )
        return hops

    async def _webhook_hops(self, ev: Event) -> list[Hop]:
        try:
            found = await self._webhooks.deliveries(ev.event_id)
        except Unavailable as e:
            return [Hop("webhook", "unknown", None, f"action orchestrator unreachable: {e}")]
        status = {"delivered": "done", "pending": "pending", "failed": "failed"}
        return [
            Hop(
                "webhook",
                status.get(d.status, d.status),
                d.updated_at,
                f"rule {d.rule_id} -> {d.target_url}: {d.status} after {d.attempts} attempt(s)"
                + (f", last error: {d.last_error}" if d.last_error else "")
                + f" (delivery {d.delivery_id})",
            )
            for d in found
        ]

    async def _projection_hops(self, ev: Event) -> list[Hop]:
        hops: list[Hop] = []
        try:
            effects, dead = await self._effects.effects(ev)
        except Unavailable as e:
            return [Hop("projection", "unknown", None, f"event handler unreachable: {e}")]
        for eff in effects:
            where = f"{eff.projection_type}/{eff.aggregate_id}"
            if eff.status == "current":
                hops.append(Hop("projection", "done", eff.updated_at, f"{where} reflects it"))
            elif eff.status == "superseded":
                hops.append(
                    Hop(
                        "projection",
                        "superseded",
                        eff.updated_at,
                        f"{where} reflects a newer event, {eff.current_event_id}",
                    )
                )
            else:
                hops.append(Hop("projection", "pending", None, f"{where} not updated yet"))
        if not effects and not dead:
            hops.append(Hop("projection", "done", None, f"no projection for {ev.event_type}"))
        for d in dead:
            status = {"pending": "failed", "replayed": "done"}.get(d.status, d.status)
            hops.append(
                Hop(
                    "dead_letter",
                    status,
                    d.failed_at,
                    f"{d.consumer}: {d.error_message} (dead letter {d.dlq_id}, {d.status})",
                )
            )
        return hops
