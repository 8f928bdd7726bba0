"""The Kafka consumer loop the event handler and the orchestrator share: poll, handle, then
commit.

Offsets are committed only after ``handle`` returned (its effects are committed). While it
raises Unavailable (the database is down) the loop blocks on the same batch, partitions
paused and nothing committed, and resumes by itself; the outage is logged when it starts and
when it ends (with the number of failed attempts), not per attempt.

Rebalances during an outage: partitions assigned while blocked are paused as they are
assigned, and a message the blocked loop's polls return anyway is kept for the next batch,
never dropped; a partition paused in an outage and assigned back after it is resumed
(librdkafka keeps the pause across revoke and reassignment). A batch's offsets are committed
only for partitions assigned to this consumer without a break since the batch was polled: a
partition revoked meanwhile (even if assigned back) belongs to whoever read it since, from
the last committed offset, and committing our older offset would move its position back.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from services.core.errors import Unavailable
from services.infra import metrics, tracing
from services.infra.kafka import drain_wait
from services.infra.skips import REREAD_WINDOW, SkipGuard

log = logging.getLogger(__name__)

LAG_INTERVAL = 5.0
# The longest a stopping consumer keeps draining: under traffic that does not stop (a
# producer still writing) an empty poll never comes. What it handled is committed; the rest
# is read again by the group's next owner (at-least-once), so stopping loses nothing.
DRAIN_LIMIT = 5.0  # well inside the 10 s a supervisor gives a stopping service (processes.py)


def header(msg: Message, name: str) -> str:
    headers: Any = msg.headers() or ()
    for key, value in headers:
        if key == name and value is not None:
            return value.decode() if isinstance(value, bytes) else str(value)
    return ""


class ConsumerLoop:
    def __init__(
        self,
        consumer: Consumer,
        handle: Callable[[list[Message]], object],
        topics: tuple[str, ...],
        *,
        batch_size: int,
        poll_timeout: float,
        group: str,
        span_name: Callable[[Message], str],
        drain_on_stop: bool = True,
        reread_window: float = REREAD_WINDOW,
        fetch_linger: float = 0.0,
        drain_limit: float = DRAIN_LIMIT,
    ) -> None:
        self._consumer = consumer
        self._handle = handle
        self._topics = topics
        self._batch_size = batch_size
        self._poll_timeout = poll_timeout
        self._group = group
        self._span_name = span_name
        self._drain_on_stop = drain_on_stop
        # The consumer's fetch linger (consumer_config): a fetch in flight may hold what was
        # stored before stop for up to two lingers, so the drain waits at least that long.
        self._drain_timeout = max(poll_timeout, drain_wait(fetch_linger))
        self._drain_limit = drain_limit
        self.stop_event = threading.Event()
        self.assigned = threading.Event()
        self.db_ok = True
        self.processed = 0
        self._lag_at = 0.0
        # Latest offsets handed to async commits, re-committed synchronously on close.
        self._pending_commit: dict[tuple[str, int], TopicPartition] = {}
        # The partitions we own, each with the number of the assignment that gave it to us:
        # a batch may commit a partition only under the assignment it was polled in.
        self._owned: dict[tuple[str, int], int] = {}
        self._assignments = 0
        # Messages polled while blocked (a partition not paused yet): the next batch's start.
        self._held: list[Message] = []
        # Partitions we paused and have not resumed: librdkafka keeps a partition's pause
        # across revoke and reassignment, so one paused during an outage and assigned back
        # after it would never be fetched again unless resumed then.
        self._paused: set[tuple[str, int]] = set()
        # Offsets must follow one another from where each assignment starts; a skip is read
        # again (services/infra/skips.py).
        self._skips = SkipGuard(f"consumer group {group}", reread_window)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info(
            "partitions assigned",
            extra={"partitions": [f"{p.topic}[{p.partition}]" for p in partitions]},
        )
        self._assignments += 1
        for p in partitions:
            self._owned[(p.topic, p.partition)] = self._assignments
            self._skips.forget((p.topic, p.partition))
        self._expect_start(consumer, partitions)
        if not self.db_ok:
            # Blocked: its polls must not fetch from these either.
            self._follow_pause(consumer, partitions, pause=partitions)
        else:
            stale = [p for p in partitions if (p.topic, p.partition) in self._paused]
            if stale:
                self._follow_pause(consumer, partitions, resume=stale)
        self.assigned.set()

    def _expect_start(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Where each assigned partition's reading must start: its committed offset, or its
        first offset when the group has none (auto.offset.reset=earliest). The first fetch
        of an assignment is the one most likely to meet a batch the embedded broker has not
        stored yet (a new owner starts at the end of the partition), so a jump from there is
        a skip too. If the broker cannot say, the first message sets the start (logged)."""
        try:
            for tp in consumer.committed(partitions, timeout=10):
                key = (tp.topic, tp.partition)
                if tp.offset >= 0:
                    self._skips.expect(key, tp.offset)
                else:
                    low, _ = consumer.get_watermark_offsets(tp, timeout=10)
                    if low >= 0:
                        self._skips.expect(key, low)
        except (KafkaException, RuntimeError) as e:
            log.warning(
                "could not read where the assigned partitions start; their first offsets "
                "are taken as they come",
                extra={"error": str(e)},
            )

    def _follow_pause(
        self,
        consumer: Consumer,
        partitions: list[TopicPartition],
        *,
        pause: Sequence[TopicPartition] = (),
        resume: Sequence[TopicPartition] = (),
    ) -> None:
        """Pause or resume some of the partitions being assigned. pause() and resume() act on
        assigned partitions only, so they are assigned here first (the client would, right
        after this callback)."""
        if not partitions:
            return
        try:
            try:
                consumer.assign(partitions)  # eager protocol (the default): the whole assignment
            except KafkaException:
                consumer.incremental_assign(partitions)  # cooperative protocol
            if pause:
                self._pause(list(pause))
            if resume:
                self._resume(list(resume))
        except KafkaException as e:
            # While blocked, _poll_while_blocked still keeps whatever comes back.
            log.warning("could not pause or resume assigned partitions", extra={"error": str(e)})

    def _pause(self, partitions: list[TopicPartition]) -> None:
        self._consumer.pause(partitions)
        self._paused.update((p.topic, p.partition) for p in partitions)

    def _resume(self, partitions: list[TopicPartition]) -> None:
        self._consumer.resume(partitions)
        self._paused.difference_update((p.topic, p.partition) for p in partitions)

    def _resume_stale(self) -> None:
        """Nothing we own stays paused once the database is back, even if a resume in an
        assign callback failed (it would never be fetched again)."""
        stale = [TopicPartition(t, p) for (t, p) in self._paused if (t, p) in self._owned]
        if not stale:
            return
        try:
            self._resume(stale)
        except KafkaException as e:
            log.warning("could not resume paused partitions", extra={"error": str(e)})

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("partitions revoked", extra={"count": len(partitions)})
        # Settle our async commits for these partitions before their next owner starts.
        revoked = self._disown(partitions)
        if revoked:
            with contextlib.suppress(Exception):
                consumer.commit(offsets=revoked, asynchronous=False)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Lost (our session expired): another member may own them already; commit nothing.
        log.warning("partitions lost", extra={"count": len(partitions)})
        self._disown(partitions)

    def _disown(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """Forget ``partitions``: no longer ours to commit; messages held from them are
        dropped (never committed, so their next owner reads them again). Returns our
        pending offsets for them."""
        keys = {(p.topic, p.partition) for p in partitions}
        for key in keys:
            self._owned.pop(key, None)
            self._skips.forget(key)
        self._held = [m for m in self._held if _key(m) not in keys]
        return [self._pending_commit.pop(k) for k in keys if k in self._pending_commit]

    def _handle_blocking(self, msgs: list[Message]) -> bool:
        """Handle until it succeeds or we are stopped; return False if stopped first."""
        spans = (
            tracing.consumer_spans([(m.headers(), self._span_name(m)) for m in msgs])
            if tracing.enabled
            else []
        )
        try:
            return self._retry_until_done(msgs)
        finally:
            for span in spans:
                span.end()

    def _retry_until_done(self, msgs: list[Message]) -> bool:
        backoff = 0.5
        failures = 0
        while True:
            try:
                self._handle(msgs)
                if not self.db_ok:
                    log.warning("database is back; resuming", extra={"failed_attempts": failures})
                    # Everything we own now, including partitions assigned during the outage.
                    self._resume(self._consumer.assignment())
                self.db_ok = True
                return True
            except Unavailable as e:
                failures += 1
                if self.db_ok:
                    log.error(
                        "database unavailable; blocking without committing", extra={"error": str(e)}
                    )
                    # From here on _on_assign pauses what a rebalance hands us.
                    self.db_ok = False
                    # Stay in the group (max.poll.interval) without fetching more.
                    self._pause(self._consumer.assignment())
                if self.stop_event.wait(backoff):
                    return False
                self._poll_while_blocked()
                backoff = min(backoff * 2, 5.0)

    def _poll_while_blocked(self) -> None:
        """Serve the group (heartbeats, rebalance callbacks). Should a message come back all
        the same, it is kept for the next batch and its partition paused: the position has
        moved past it, so dropping it would commit past it later."""
        msg = self._consumer.poll(0)
        if msg is None:
            return
        err = msg.error()
        if err is not None:
            if err.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error", extra={"error": err.str()})
            return
        topic, partition = _key(msg)
        if (topic, partition) not in self._owned:
            return  # not ours (any more): its owner reads it from the committed offset
        self._held.append(msg)
        self._pause([TopicPartition(topic, partition)])
        log.info(
            "kept a message polled while blocked",
            extra={"partition": f"{topic}[{partition}]", "offset": msg.offset()},
        )

    def _claims(self, msgs: list[Message]) -> dict[tuple[str, int], int]:
        """Which assignment each partition of a batch was polled under (see _commit)."""
        return {k: self._owned[k] for k in {_key(m) for m in msgs} if k in self._owned}

    def _check_offsets(self, msgs: list[Message]) -> list[Message]:
        """The batch without what follows a skipped offset, which is read again (ADR 18,
        "The embedded broker's skipped batches"; services/infra/skips.py)."""
        return self._skips.filter(msgs, self._seek)

    def _seek(self, key: tuple[str, int], offset: int) -> bool:
        try:
            # librdkafka drops what it had fetched past this point and fetches from here.
            self._consumer.seek(TopicPartition(key[0], key[1], offset))
            return True
        except KafkaException as e:
            log.warning(
                "could not seek back to skipped offsets",
                extra={"partition": f"{key[0]}[{key[1]}]", "offset": offset, "error": str(e)},
            )
            return False

    def _commit(self, msgs: list[Message], claims: dict[tuple[str, int], int]) -> None:
        latest: dict[tuple[str, int], int] = {}
        for m in msgs:
            key = _key(m)
            if key not in claims or self._owned.get(key) != claims[key]:
                # Revoked since the batch was polled (perhaps assigned back since): its new
                # owner started from the committed offset and may have committed further.
                continue
            latest[key] = max(latest.get(key, -1), int(m.offset() or 0))
        if not latest:
            return
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in latest.items()]
        for tp in offsets:
            self._pending_commit[(tp.topic, tp.partition)] = tp
        try:
            # Asynchronous: the effects have already committed, which is all at-least-once
            # needs; librdkafka sends commits in order, and a lost one only means a harmless
            # re-delivery. close() commits synchronously at the end.
            self._consumer.commit(offsets=offsets, asynchronous=True)
        except Exception as e:
            # E.g. a rebalance took the partition: the next owner re-reads; effects are idempotent.
            log.warning("offset commit failed", extra={"error": str(e)})

    def _sample_lag(self) -> None:
        """Every few seconds: position vs. end of each assigned partition (both local: the
        end offset is the one the last fetch response reported)."""
        now = time.monotonic()
        if now - self._lag_at < LAG_INTERVAL:
            return
        self._lag_at = now
        try:
            for tp in self._consumer.position(self._consumer.assignment()):
                _, high = self._consumer.get_watermark_offsets(tp, cached=True)
                if tp.offset >= 0 and high >= 0:
                    metrics.CONSUMER_LAG.labels(self._group, tp.topic, str(tp.partition)).set(
                        max(0, high - tp.offset)
                    )
        except Exception as e:  # a metric must never stop the loop
            log.debug("could not sample consumer lag", extra={"error": str(e)})

    def _poll_batch(self, timeout: float) -> list[Message]:
        if self._held:
            # Polled while blocked: handled first, ahead of what follows in their partitions.
            held, self._held = self._held, []
            return held
        # consume(n, timeout) waits the whole timeout unless n messages arrive, which would
        # add up to poll_timeout of latency to every event. Wait for the first message only,
        # then take whatever else is already fetched.
        first = self._consumer.poll(timeout)
        if first is None:
            return []
        if self._batch_size == 1:
            return [first]
        return [first, *self._consumer.consume(self._batch_size - 1, timeout=0)]

    def run(self) -> None:
        self._consumer.subscribe(
            list(self._topics),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        drain_until: float | None = None
        try:
            while True:
                if self.stop_event.is_set() and not self._drain_on_stop:
                    break
                if self.stop_event.is_set():
                    now = time.monotonic()
                    if drain_until is None:
                        drain_until = now + self._drain_limit
                    elif now >= drain_until:
                        log.warning(
                            "stopping while events still arrive: the drain ended after "
                            f"{self._drain_limit:g}s; what was handled is committed, the rest "
                            "is read again by the group's next owner",
                            extra={"processed": self.processed},
                        )
                        break
                good: list[Message] = []
                # Only a poll begun after stop, waiting the drain timeout, ends the drain: one
                # begun before may have come back empty while a lingering fetch held events.
                draining = self.stop_event.is_set()
                polled = self._poll_batch(self._drain_timeout if draining else self._poll_timeout)
                for m in polled:
                    err = m.error()
                    if err is None:
                        good.append(m)
                    elif err.code() != KafkaError._PARTITION_EOF:
                        log.warning("consumer error", extra={"error": err.str()})
                good = self._check_offsets(good)
                claims = self._claims(good)
                self._sample_lag()
                if self.db_ok and self._paused:
                    self._resume_stale()
                if good:
                    if not self._handle_blocking(good):
                        break
                    self._commit(good, claims)
                    self.processed += len(good)
                elif draining and not polled:
                    # Drain: we stop once a poll comes back empty, so events published just
                    # before shutdown are handled first.
                    break
        finally:
            # Only partitions still ours (revoke and lost remove theirs from the pending set).
            pending = [tp for k, tp in self._pending_commit.items() if k in self._owned]
            if pending:
                with contextlib.suppress(Exception):
                    self._consumer.commit(offsets=pending, asynchronous=False)
            self._consumer.close()
            log.info("consumer closed", extra={"processed": self.processed})


def _key(msg: Message) -> tuple[str, int]:
    return (str(msg.topic()), int(msg.partition() or 0))
