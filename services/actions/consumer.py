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

from services.actions.ports import JobSink, NewJob
from services.actions.service import match_events
from services.core.clock import Clock
from services.core.errors import InvalidInput
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
        self.skipped = 0  # events whose jobs the database refused (logged)

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
        try:
            created = self._sink.enqueue(jobs, self._clock.now(), self._dedupe_window)
        except InvalidInput:
            # Some event's data cannot be stored (nothing was written): enqueue event by
            # event so only the refused one is skipped, not its batch-mates, and the loop
            # does not retry the same batch forever. The event handler dead-letters it.
            created = self._enqueue_one_by_one(jobs)
        metrics.WEBHOOK_JOBS.inc(created)
        self.jobs += created
        return created

    def _enqueue_one_by_one(self, jobs: list[NewJob]) -> int:
        by_event: dict[str, list[NewJob]] = {}
        for job in jobs:
            by_event.setdefault(job.event_id, []).append(job)
        created = 0
        for event_id, its_jobs in by_event.items():
            try:
                created += self._sink.enqueue(its_jobs, self._clock.now(), self._dedupe_window)
            except InvalidInput as e:
                self.skipped += 1
                log.error(
                    "skipping an event whose delivery jobs cannot be stored",
                    extra={"event_id": event_id, "error": str(e)},
                )
        return created
