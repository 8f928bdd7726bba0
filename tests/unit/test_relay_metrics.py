"""The relay's event counter tells published events from ones the bus refused for good."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from services.core.errors import InvalidInput, Unavailable
from services.core.events import PartlyPublished, Publication
from services.infra import metrics


class _Refusing:
    async def publish(self, events: Sequence[Any]) -> list[Any]:
        # Results in the order of the events: two sent, one refused for good.
        return ["ok", InvalidInput("message too large"), "ok"]

    def close(self, flush_timeout: float = 10) -> None:
        pass


def _count(result: str) -> float:
    return float(metrics.RELAY_EVENTS.labels(result)._value.get())


def test_a_refused_event_is_not_counted_as_published() -> None:
    before = _count("published")
    results = asyncio.run(metrics.InstrumentedPublisher(_Refusing()).publish([]))
    assert len(results) == 3
    assert _count("published") - before == 2


class _PartOut:
    async def publish(self, events: Sequence[Any]) -> list[Any]:
        ok = Publication("e", "sensor-events", 0, 0)
        raise PartlyPublished("1 of 3 not acknowledged", [ok, Unavailable("timed out"), ok])

    def close(self, flush_timeout: float = 10) -> None:
        pass


def test_a_partial_failure_counts_what_was_acknowledged_as_published() -> None:
    """The relay deletes the acknowledged rows of a partly failed publish: they count as
    published, only the others as failed."""
    published, failed = _count("published"), _count("failed")
    with pytest.raises(PartlyPublished):
        asyncio.run(metrics.InstrumentedPublisher(_PartOut()).publish([]))
    assert _count("published") - published == 2
    assert _count("failed") - failed == 1
