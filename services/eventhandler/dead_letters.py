"""Dead-letter operations: list, show, replay through the same projectors, discard.

Replaying applies the event's projection updates and marks the dead letter ``replayed`` in
one transaction (newer-wins, like live handling, so a replay never moves a projection
backwards); if it fails again it stays ``pending`` with its retry count and error updated.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.core.errors import InvalidInput, NotFound
from services.core.events import Event
from services.eventhandler.projectors import ProjectionUpdate, Registry, newest_per_key

STATUSES = ("pending", "replayed", "discarded")
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_REPLAY = 1000


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    consumer: str = ""
    status: str = ""
    failed_since: datetime | None = None
    failed_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    dlq_id: str
    consumer: str
    event_id: str
    raw: bytes
    error_message: str
    failed_at: datetime
    retry_count: int
    status: str


@dataclass(frozen=True, slots=True)
class DeadLetterView:
    record: DeadLetterRecord
    event_type: str
    aggregate_id: str


@dataclass(frozen=True, slots=True)
class Outcome:
    dlq_id: str
    status: str  # replayed | failed | skipped | discarded
    error: str = ""


class DeadLetterStore(Protocol):
    """The DLQ table. Raises Unavailable when the database cannot be used."""

    def page(
        self, flt: DeadLetterFilter, limit: int, offset: int
    ) -> tuple[list[DeadLetterRecord], int]: ...

    def get(self, dlq_id: str) -> DeadLetterRecord | None: ...

    def pending(
        self, ids: Sequence[str], flt: DeadLetterFilter | None, limit: int
    ) -> list[DeadLetterRecord]:
        """With ids: every named letter that is pending, ``limit`` ignored. Without: up to
        ``limit`` pending letters the filter selects, oldest first."""
        ...

    def mark_replayed(
        self, dlq_id: str, updates: Sequence[ProjectionUpdate], now: datetime
    ) -> bool:
        """Apply the updates and mark the row replayed in one transaction; False if it was
        no longer pending (someone else replayed or discarded it meanwhile)."""
        ...

    def mark_failed(self, dlq_id: str, error: str) -> None:
        """Count a failed replay and record its error (stored cleaned: never refused)."""
        ...

    def discard(self, ids: Sequence[str]) -> list[str]: ...


class DeadLetterService:
    def __init__(
        self,
        store: DeadLetterStore,
        registry: Registry,
        decode: Callable[[bytes], Event],
        now: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._registry = registry
        self._decode = decode
        self._now = now

    def page(
        self, flt: DeadLetterFilter, limit: int | None, offset: int
    ) -> tuple[list[DeadLetterView], int, int]:
        _check_filter(flt)
        limit = DEFAULT_LIMIT if limit is None else limit
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
        if offset < 0:
            raise InvalidInput(f"offset must be >= 0, got {offset}")
        records, total = self._store.page(flt, limit, offset)
        return [self._view(r) for r in records], total, limit

    def get(self, dlq_id: str) -> DeadLetterView:
        _check_id(dlq_id)
        record = self._store.get(dlq_id)
        if record is None:
            raise NotFound(f"no dead letter {dlq_id}")
        return self._view(record)

    def replay(
        self, ids: Sequence[str], flt: DeadLetterFilter | None, limit: int | None
    ) -> list[Outcome]:
        """Replay the named ids, every one of them (``limit`` does not apply; more than
        MAX_REPLAY is refused), or else up to ``limit`` pending letters the filter selects."""
        limit = 100 if limit is None else limit
        if not 1 <= limit <= MAX_REPLAY:
            raise InvalidInput(f"limit must be between 1 and {MAX_REPLAY}, got {limit}")
        if ids:
            ids = _checked_ids(ids)
            flt = None
            limit = len(ids)
        else:
            if flt is None:
                flt = DeadLetterFilter()
            _check_filter(flt)
            if flt.status not in ("", "pending"):
                raise InvalidInput("only pending dead letters can be replayed")
        records = {r.dlq_id: r for r in self._store.pending(ids, flt, limit)}
        order = ids if ids else list(records)
        outcomes = []
        for dlq_id in order:
            record = records.get(dlq_id)
            if record is None:
                outcomes.append(Outcome(dlq_id, "skipped", "not found or not pending"))
                continue
            outcomes.append(self._replay_one(record))
        return outcomes

    def _replay_one(self, record: DeadLetterRecord) -> Outcome:
        try:
            event = self._decode(record.raw)
            updates: list[ProjectionUpdate] = []
            for projector in self._registry.projectors_for(event.event_type):
                updates.extend(projector(event))
        except Exception as e:  # still poison: record why, keep it pending
            error = f"{type(e).__name__}: {e}"
            self._store.mark_failed(record.dlq_id, error)
            return Outcome(record.dlq_id, "failed", error)
        try:
            replayed = self._store.mark_replayed(
                record.dlq_id, newest_per_key(updates), self._now()
            )
        except InvalidInput as e:  # the database refuses a value of it (a NUL): still poison
            self._store.mark_failed(record.dlq_id, str(e))
            return Outcome(record.dlq_id, "failed", str(e))
        if not replayed:
            return Outcome(record.dlq_id, "skipped", "no longer pending")
        return Outcome(record.dlq_id, "replayed")

    def discard(self, ids: Sequence[str]) -> list[Outcome]:
        if not ids:
            raise InvalidInput("dlq_ids is required")
        ids = _checked_ids(ids)
        done = set(self._store.discard(ids))
        return [
            Outcome(i, "discarded") if i in done else Outcome(i, "skipped", "not pending")
            for i in ids
        ]

    def _view(self, record: DeadLetterRecord) -> DeadLetterView:
        try:
            event = self._decode(record.raw)
        except Exception:  # undecodable: that may be why it is here
            return DeadLetterView(record, "", "")
        return DeadLetterView(record, event.event_type, event.aggregate_id)


def _check_id(dlq_id: str) -> None:
    try:
        uuid.UUID(dlq_id)
    except ValueError:
        raise InvalidInput(f"dlq_id {dlq_id[:80]!r} is not a UUID") from None


def _checked_ids(ids: Sequence[str]) -> list[str]:
    """The ids, each checked, repeats dropped (first place kept); at most MAX_REPLAY."""
    unique = list(dict.fromkeys(ids))
    if len(unique) > MAX_REPLAY:
        raise InvalidInput(
            f"at most {MAX_REPLAY} dlq_ids per request, got {len(unique)}; send them in parts"
        )
    for i in unique:
        _check_id(i)
    return unique


def _check_filter(flt: DeadLetterFilter) -> None:
    if len(flt.consumer) > 200 or any(ord(c) < 32 or ord(c) == 127 for c in flt.consumer):
        raise InvalidInput("consumer must be at most 200 characters without control characters")
    if flt.status and flt.status not in STATUSES:
        raise InvalidInput(f"status {flt.status!r} is not one of {', '.join(STATUSES)}")
    if flt.failed_since and flt.failed_until and flt.failed_since > flt.failed_until:
        raise InvalidInput("failed_since is after failed_until")
