"""Republish stored events to the bus (feed a new consumer, refill a broker that lost data).

Consumers are idempotent by event_id (projections move only forward; the orchestrator
dedupes jobs), so republishing what they already saw changes nothing twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence

from services.core.errors import InvalidInput
from services.core.events import Event
from services.ingestion.relay import Publisher

log = logging.getLogger(__name__)

Progress = Callable[[int, int, float], None]


async def republish(
    batches: Iterable[Sequence[Event]],
    total: int,
    publisher: Publisher,
    *,
    progress: Progress | None = None,
    now: Callable[[], float] = time.monotonic,
) -> int:
    """Publish every batch in order, each acknowledged by the broker before the next. An
    event the bus refuses for good (too large for the topic) is logged and skipped."""
    t0 = now()
    done = 0
    for batch in batches:
        if batch:
            results = await publisher.publish(batch)
            for event, result in zip(batch, results, strict=True):
                if isinstance(result, InvalidInput):
                    log.error(
                        "event refused by the bus for good; not republished",
                        extra={"event_id": event.event_id, "error": str(result)},
                    )
        done += len(batch)
        if progress:
            progress(done, total, now() - t0)
    return done
