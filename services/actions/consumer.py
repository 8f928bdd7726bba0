"""The orchestrator's side of the shared consumer loop (services/infra/consumer_loop.py):
events in, durable delivery jobs out, then the loop commits.

Matching is cheap and the jobs are written to PostgreSQL before the offsets are committed,
so a slow or dead webhook endpoint never holds a partition: sending happens later, in the
delivery workers. A re-delivered event hits the (rule_id, event_id) key and makes no second
job. While the database is down the loop blocks on the same batch (partitions paused,
nothing committed) and resumes by itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from services.actions.ports import JobSink
from services.actions.service import match_events
from services.core.clock import Clock
from services.core.events import Event
from services.infra import metrics
from services.infra.codec import DecodeError, decode_event

log = logging.getLogger(__name__)


class JobPlanner:
    """Turns a polled batch into jobs: undecodable messages are logged and skipped (the
    event handler keeps poison messages in its DLQ); rules are read per batch so a new
    rule applies to the next event without a cache to invalidate."""

    def __init__(
        self, sink: JobSink, clock: Clock, new_id: Callable[[], str], dedupe_window: float
    ) -> None:
        self._sink = sink
        self._clock = clock
        self._new_id = new_id
        self._dedupe_window = dedupe_window
        self.jobs = 0

    def handle(self, raws: list[bytes]) -> int:
        rules = self._sink.enabled_rules()
        if not rules:
            # Nothing can match: skip decoding, the orchestrator's largest per-event cost.
            return 0
        events: list[Event] = []
        for raw in raws:
            try:
                events.append(decode_event(raw))
            except DecodeError as e:
                log.warning("skipping an undecodable message", extra={"error": str(e)})
        if not events:
            return 0
        jobs = match_events(rules, events, self._new_id)
        created = self._sink.enqueue(jobs, self._clock.now(), self._dedupe_window)
        metrics.WEBHOOK_JOBS.inc(created)
        self.jobs += created
        return created
