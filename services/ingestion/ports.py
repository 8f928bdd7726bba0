"""Ports the ingestion core needs; adapters live in outbox_store.py and services/infra."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.core.events import Event


@dataclass(frozen=True, slots=True)
class PendingEvent:
    event: Event
    idempotency_key: str = ""
    # Whose key it is (the caller's subject): equal keys of different principals are unrelated.
    principal: str = ""

    @property
    def scoped_key(self) -> tuple[str, str]:
        return (self.principal, self.idempotency_key)


@dataclass(frozen=True, slots=True)
class Appended:
    event_id: str
    duplicate: bool


class Outbox(Protocol):
    """Durable capture of accepted events. Safe for concurrent use.

    ``append`` returns only after one transaction holding every row has committed; it
    raises ``Unavailable`` when the database cannot be used (nothing was accepted then).
    An idempotency key the same principal used within ``retention_since`` answers the
    original event_id
    with ``duplicate=True`` and writes nothing.
    """

    async def append(
        self, items: Sequence[PendingEvent], *, retention_since: datetime
    ) -> list[Appended]: ...
