"""Ingestion core: validate, stamp, capture durably. No gRPC, SQL or Kafka in here."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from services.core.clock import Clock
from services.core.errors import InvalidInput
from services.core.events import Event, Metadata
from services.ingestion.ports import Outbox, PendingEvent
from services.ingestion.validation import IngestCommand, validate

log = logging.getLogger(__name__)

MAX_BATCH = 500


@dataclass(frozen=True, slots=True)
class IngestResult:
    event_id: str
    status: str  # "accepted" | "duplicate" | "rejected"
    error: str = ""


class IngestionService:
    def __init__(
        self,
        outbox: Outbox,
        clock: Clock,
        new_id: Callable[[], str],
        *,
        max_payload_bytes: int,
        idempotency_retention: float,
    ) -> None:
        self._outbox = outbox
        self._clock = clock
        self._new_id = new_id
        self._max_payload_bytes = max_payload_bytes
        self._retention = timedelta(seconds=idempotency_retention)

    def _prepare(self, cmd: IngestCommand) -> PendingEvent:
        now = self._clock.now()
        validate(cmd, now=now, max_payload_bytes=self._max_payload_bytes)
        event = Event(
            event_id=self._new_id(),
            event_type=cmd.event_type,
            aggregate_id=cmd.aggregate_id,
            event_time=cmd.event_time or now,
            ingested_at=now,
            payload=cmd.payload,
            metadata=Metadata(
                trace_id=cmd.trace_id, source=cmd.source, span_id=cmd.span_id, subject=cmd.subject
            ),
        )
        return PendingEvent(event, cmd.idempotency_key, principal=cmd.principal)

    async def ingest(self, cmd: IngestCommand) -> IngestResult:
        """Accept one event; raises InvalidInput or Unavailable."""
        pending = self._prepare(cmd)
        (appended,) = await self._outbox.append(
            [pending], retention_since=self._clock.now() - self._retention
        )
        status = "duplicate" if appended.duplicate else "accepted"
        log.debug("event %s", status, extra={"event_id": appended.event_id, "source": cmd.source})
        return IngestResult(appended.event_id, status)

    async def ingest_many(self, cmds: Sequence[IngestCommand]) -> list[IngestResult]:
        """Validate each event on its own; write all valid ones in one transaction.

        Raises InvalidInput for an empty or oversized batch, Unavailable when nothing could be
        written (then no event of the batch was accepted).
        """
        if not cmds:
            raise InvalidInput("events must hold at least one event")
        if len(cmds) > MAX_BATCH:
            raise InvalidInput(f"a batch holds at most {MAX_BATCH} events, got {len(cmds)}")
        results: list[IngestResult | None] = [None] * len(cmds)
        pending: list[PendingEvent] = []
        positions: list[int] = []
        for i, cmd in enumerate(cmds):
            try:
                pending.append(self._prepare(cmd))
                positions.append(i)
            except InvalidInput as e:
                results[i] = IngestResult("", "rejected", str(e))
        if pending:
            appended = await self._outbox.append(
                pending, retention_since=self._clock.now() - self._retention
            )
            for pos, app in zip(positions, appended, strict=True):
                results[pos] = IngestResult(
                    app.event_id, "duplicate" if app.duplicate else "accepted"
                )
        return [r for r in results if r is not None]
