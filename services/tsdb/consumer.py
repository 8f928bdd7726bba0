"""The writer's side of the shared consumer loop (services/infra/consumer_loop.py): decode a
polled batch, write its points (one transaction), record metrics; the loop then commits.

Undecodable messages are logged and skipped: the event handler keeps poison messages in its
dead-letter queue, and the time series have nothing to add to it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from confluent_kafka import Message

from services.core.events import Event
from services.infra import metrics
from services.infra.codec import DecodeError, decode_event
from services.tsdb.service import SeriesWriter

log = logging.getLogger(__name__)


def batch_handler(
    writer: SeriesWriter, now: Callable[[], datetime]
) -> Callable[[list[Message]], None]:
    """Raises Unavailable (the loop blocks, committing nothing) while the database is down."""

    def handle(msgs: list[Message]) -> None:
        start = time.perf_counter()
        events: list[Event] = []
        for m in msgs:
            try:
                events.append(decode_event(m.value() or b""))
            except DecodeError as e:
                metrics.TSDB_POINTS.labels("undecodable").inc()
                log.warning("skipping an undecodable message", extra={"error": str(e)})
        out = writer.handle(events, now())
        metrics.TSDB_BATCH_SECONDS.observe(time.perf_counter() - start)
        metrics.TSDB_POINTS.labels("written").inc(out.written)
        metrics.TSDB_POINTS.labels("duplicate").inc(out.points - out.written - out.refused)
        metrics.TSDB_POINTS.labels("too_old").inc(out.too_old)
        metrics.TSDB_POINTS.labels("refused").inc(out.refused)

    return handle
