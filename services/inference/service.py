"""Inference core: score sensor readings with a model per (device, metric), learn them in
event-time order, and decide the ``ai.anomaly`` events (issue 18, ADR 20).

A polled batch is applied in one checkpoint: model states, what each learned up to, the
scores, the anomalies to send and the next offset of every partition commit together. A
reading whose score is already stored was applied before a crash (the bus offset commit is
later and may be lost) and is skipped, so a reading is never learned twice. (Offsets alone
cannot say so: the local stack's in-memory broker starts again from offset 0 when it is
replaced, under the same cluster id; event ids stay.) Anomalies are sent after the
checkpoint, from the store, with an idempotency key made of the source event id and metric,
so a restart between the two neither loses nor repeats one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from services.core.errors import Unavailable
from services.core.events import Event
from services.inference.detector import Model, SeasonalRobust, new_model

log = logging.getLogger(__name__)

ANOMALY_TYPE = "ai.anomaly"
DAY = timedelta(days=1)
# A reading larger than this in magnitude is unusable (skipped and counted, as a non-number
# is): squares and sums of such values overflow the model's state to inf (ADR 20).
MAX_ABS_READING = 1e150
# A reading whose event_time is further than this past its ingested_at is scored but not
# learned (counted as future): it would become the model's last event time and make every
# later reading "late" (ingestion allows 24 h of clock skew).
FUTURE_SKEW = timedelta(minutes=5)
# A metric name (a payload key) the service takes: the tsdb writer's rule (services/tsdb).
METRIC_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_ATTEMPTS = 5  # checkpoint conflicts in a row before the batch is left to the loop's retry
# How often the stored unsent anomalies are read back even when every send went through: a
# replica that crashed between its checkpoint and its send and did not come back leaves some.
BACKLOG_EVERY = 10.0


@dataclass(frozen=True, slots=True)
class Message:
    """One polled message: where it came from and what it decoded to."""

    topic: str
    partition: int
    offset: int
    event: Event | None
    raw: bytes
    error: str = ""  # why it did not decode


@dataclass(slots=True)
class ModelRow:
    device: str
    metric: str
    model: Model
    late: int = 0
    last_event_time: datetime | None = None
    last_event_id: str | None = None
    last_score: float | None = None
    generation: int = 0  # bumped by a reset; a checkpoint writes only over the one it loaded
    version: int = 0  # bumped by every checkpoint; 0: not stored when loaded
    corrupt: str = ""  # why the stored state could not be restored: the key is poison


@dataclass(frozen=True, slots=True)
class Score:
    event_id: str
    metric: str
    device: str
    event_time: datetime
    value: float
    score: float
    low: float
    high: float
    learned: bool
    anomaly: bool


@dataclass(frozen=True, slots=True)
class Anomaly:
    source_event_id: str
    metric: str
    device: str
    event_time: datetime
    payload: dict[str, Any]
    trace_id: str = ""

    @property
    def idempotency_key(self) -> str:
        # A hash of the metric: short and printable whatever the name (ingestion takes at
        # most 256 characters).
        digest = hashlib.sha256(self.metric.encode()).hexdigest()[:32]
        return f"ai.anomaly:{self.source_event_id}:{digest}"


@dataclass(frozen=True, slots=True)
class Rejected:
    """Ingestion refused an anomaly for good (the same request would be refused again): it
    is kept as rejected with the reason, never marked sent nor retried."""

    error: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    event_id: str | None
    raw: bytes
    error: str


@dataclass(slots=True)
class Checkpoint:
    models: list[ModelRow] = field(default_factory=list)
    scores: list[Score] = field(default_factory=list)
    anomalies: list[Anomaly] = field(default_factory=list)
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    dead: list[DeadLetter] = field(default_factory=list)


class InferenceStore(Protocol):
    """The checkpoint in PostgreSQL. Used from one thread.

    ``applied`` says which of the event ids asked have stored scores; ``load`` the stored
    model rows of the keys asked; ``save`` writes a whole Checkpoint in ONE transaction
    (positions are a record for operators) and returns False, having written nothing, when
    a model row is no longer the generation and version its batch loaded; ``unsent`` the anomalies
    not yet accepted by ingestion, oldest first, and ``mark_sent`` records ingestion's ids.
    Every method raises Unavailable when the database cannot be used.
    """

    def applied(self, event_ids: Sequence[str]) -> set[str]: ...

    def load(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], ModelRow]: ...

    def save(self, checkpoint: Checkpoint) -> bool: ...

    def metrics(self, devices: Sequence[str]) -> dict[str, set[str]]:
        """The metrics of the devices that have a stored model row."""
        ...

    def unsent(self, limit: int) -> list[Anomaly]: ...

    def anomaly_times(self, devices: Sequence[str], since: datetime) -> dict[str, list[datetime]]:
        """The event times of the devices' stored anomalies at or after ``since``."""
        ...

    def mark_sent(self, sent: Sequence[tuple[Anomaly, str | Rejected]]) -> None: ...


class AnomalySink(Protocol):
    """Sends anomalies to ingestion; returns the event id ingestion gave each one, in order.
    Rejected for one ingestion refused for good. Repeating a send is harmless
    (idempotency keys). Raises Unavailable when ingestion cannot
    take them (the caller retries later)."""

    def send(self, anomalies: Sequence[Anomaly]) -> list[str | Rejected]: ...


@dataclass(slots=True)
class Counters:
    scored: int = 0
    learned: int = 0
    late: int = 0
    future: int = 0  # scored, not learned: event_time too far past ingested_at
    skipped: int = 0  # readings without a usable number
    unusable: int = 0  # numbers left out: too large, a bad metric name, over the metric cap
    already_applied: int = 0
    anomalies: int = 0
    sent: int = 0
    rejected: int = 0  # anomalies ingestion refused for good (kept as rejected)
    dead: int = 0
    conflicts: int = 0  # checkpoints redone: a model changed since the batch loaded it


def numbers(payload: dict[str, Any]) -> dict[str, float]:
    """The usable readings of a payload: its top-level finite numbers (not booleans) of
    magnitude at most MAX_ABS_READING, named by a valid metric name (METRIC_RE)."""
    found: dict[str, float] = {}
    for key, value in payload.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not METRIC_RE.match(str(key)):
            continue
        try:
            v = float(value)
        except OverflowError:  # an int beyond float
            continue
        if math.isfinite(v) and abs(v) <= MAX_ABS_READING:
            found[str(key)] = v
    return found


def is_uuid(text: str) -> bool:
    """Whether an event id can be stored (the checkpoint keeps only uuid event ids)."""
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _count_numbers(payload: dict[str, Any]) -> int:
    return sum(
        1 for v in payload.values() if isinstance(v, int | float) and not isinstance(v, bool)
    )


class Inference:
    def __init__(
        self,
        store: InferenceStore,
        sink: AnomalySink,
        *,
        consumer: str,
        warmup: int,
        threshold: float,
        model: str = "seasonal-robust",
        send_batch: int = 500,
        max_metrics: int = 32,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._sink = sink
        self.consumer = consumer
        self.warmup = warmup
        self.threshold = threshold
        self.model = model
        self._send_batch = send_batch
        self.max_metrics = max_metrics
        self.counters = Counters()
        self._clock = clock
        # Stored anomalies may be unsent (read them back before sending new ones directly).
        self._backlog = True
        self._backlog_at = 0.0

    def _new_model(self) -> Model:
        m = new_model(self.model)
        if isinstance(m, SeasonalRobust):
            m.warmup = self.warmup
            m.threshold = self.threshold
        return m

    def handle(self, msgs: Sequence[Message]) -> Checkpoint:
        """Apply a polled batch, then send its anomalies (and any left pending). Raises
        Unavailable (nothing is lost: the caller retries the same batch and must not commit
        offsets)."""
        checkpoint = self.apply(msgs)
        self.flush(checkpoint.anomalies)
        return checkpoint

    def apply(self, msgs: Sequence[Message]) -> Checkpoint:
        """Apply a batch in one checkpoint. When another replica (during a rebalance) or a
        reset changed a model since the batch loaded it, the checkpoint rolls back and the
        batch is applied again over what is stored now (its readings then applied are
        skipped), so no model update is lost."""
        for _ in range(MAX_ATTEMPTS):
            before = dataclasses.replace(self.counters)
            cp = self._apply_once(msgs)
            if not cp.positions or self._store.save(cp):
                return cp
            self.counters = before
            self.counters.conflicts += 1
            log.info("checkpoint conflict: applying the batch again")
        raise Unavailable(f"checkpoint conflicted {MAX_ATTEMPTS} times in a row")

    def _apply_once(self, msgs: Sequence[Message]) -> Checkpoint:
        ids = [m.event.event_id for m in msgs if m.event is not None]
        done = self._store.applied(ids) if ids else set()
        fresh: list[Message] = []
        for m in msgs:  # once per event id: a copy within the batch counts as applied
            if m.event is None:
                fresh.append(m)
            elif m.event.event_id not in done:
                done.add(m.event.event_id)
                fresh.append(m)
        self.counters.already_applied += len(msgs) - len(fresh)
        cp = Checkpoint()
        for m in msgs:
            key = (m.topic, m.partition)
            cp.positions[key] = max(cp.positions.get(key, 0), m.offset + 1)
        readings: list[tuple[Message, Event, dict[str, float]]] = []
        for m in fresh:
            if m.event is None:
                cp.dead.append(DeadLetter(None, m.raw, f"undecodable message: {m.error}"))
                continue
            if not m.event.event_type.startswith("sensor."):
                continue
            values = numbers(m.event.payload)
            self.counters.unusable += _count_numbers(m.event.payload) - len(values)
            if not values:
                self.counters.skipped += 1
                continue
            readings.append((m, m.event, values))
        self._cap_metrics(readings)
        keys = sorted({(e.aggregate_id, metric) for _, e, vs in readings for metric in vs})
        rows = self._store.load(keys) if keys else {}
        touched: dict[tuple[str, str], ModelRow] = {}
        for m, event, values in readings:
            try:
                scored = [self._score(rows, event, metric, v) for metric, v in values.items()]
            except Exception as e:  # a model bug or a value it cannot take: poison
                log.warning("model failed", extra={"event_id": event.event_id, "error": str(e)})
                cp.dead.append(
                    DeadLetter(event.event_id, m.raw, f"model failed: {type(e).__name__}: {e}")
                )
                continue
            for row, score, anomaly in scored:
                touched[(row.device, row.metric)] = row
                rows[(row.device, row.metric)] = row
                cp.scores.append(score)
                if anomaly is not None:
                    cp.anomalies.append(anomaly)
        self._count_recent(cp.anomalies)
        cp.models = [touched[k] for k in sorted(touched)]  # one lock order for all replicas
        self.counters.scored += len(cp.scores)
        self.counters.anomalies += len(cp.anomalies)
        self.counters.dead += len(cp.dead)
        return cp

    def _cap_metrics(self, readings: list[tuple[Message, Event, dict[str, float]]]) -> None:
        """At most max_metrics models per device: the readings of further metric names are
        left out and counted as unusable. (Two replicas creating new metrics of one device
        at once may pass the cap by what each creates.)"""
        devices = sorted({e.aggregate_id for _, e, _ in readings})
        if not devices:
            return
        known = self._store.metrics(devices)
        for _, event, values in readings:
            have = known.setdefault(event.aggregate_id, set())
            for metric in list(values):
                if metric in have:
                    continue
                if len(have) < self.max_metrics:
                    have.add(metric)
                else:
                    del values[metric]
                    self.counters.unusable += 1
        readings[:] = [r for r in readings if r[2]]

    def _score(
        self, rows: dict[tuple[str, str], ModelRow], event: Event, metric: str, value: float
    ) -> tuple[ModelRow, Score, Anomaly | None]:
        device = event.aggregate_id
        row = rows.get((device, metric))
        if row is not None and row.corrupt:
            raise ValueError(f"stored model of {device}/{metric} is corrupt: {row.corrupt}")
        if row is None or row.model.n == 0:
            # New, or reset (a reset row keeps its generation).
            row = ModelRow(
                device,
                metric,
                self._new_model(),
                generation=row.generation if row else 0,
                version=row.version if row else 0,
            )
        else:
            # Work on a copy: a failure half-way through must not leave a changed model.
            row = ModelRow(
                device,
                metric,
                row.model.copy(),
                row.late,
                row.last_event_time,
                row.last_event_id,
                row.last_score,
                row.generation,
                row.version,
            )
        t = event.event_time.timestamp()
        s = row.model.score(value, t)
        if not (math.isfinite(s.score) and 0.0 <= s.score <= 1.0):
            raise ValueError(f"score {s.score!r} is outside [0, 1]")
        warm = row.model.n >= self.warmup
        is_anomaly = warm and s.score >= self.threshold
        last = (row.last_event_time, row.last_event_id or "")
        future = event.event_time > event.ingested_at + FUTURE_SKEW
        learn = not future and (
            row.last_event_time is None or (event.event_time, event.event_id) > last
        )
        if future:
            self.counters.future += 1
        elif learn:
            row.model.learn(value, t)
            if not row.model.finite():
                raise ValueError(f"model state is not finite after learning {value!r}")
            row.last_event_time, row.last_event_id = event.event_time, event.event_id
            self.counters.learned += 1
        else:
            row.late += 1
            self.counters.late += 1
        row.last_score = s.score
        score = Score(
            event.event_id,
            metric,
            device,
            event.event_time,
            value,
            s.score,
            s.low,
            s.high,
            learn,
            is_anomaly,
        )
        anomaly = None
        if is_anomaly:
            anomaly = Anomaly(
                event.event_id,
                metric,
                device,
                event.event_time,
                {
                    "source_event_id": event.event_id,
                    "device": device,
                    "metric": metric,
                    "value": value,
                    "score": round(s.score, 6),
                    "threshold": self.threshold,
                    "expected": {"low": s.low, "high": s.high},
                    "model": row.model.name,
                    "model_version": row.model.version,
                },
                event.metadata.trace_id,
            )
        return row, score, anomaly

    def _count_recent(self, anomalies: list[Anomaly]) -> None:
        """Each anomaly carries its device's count of anomalies (all metrics) in the 24 h up
        to it, this one included: the device_health projection shows it as it is."""
        if not anomalies:
            return
        since = min(a.event_time for a in anomalies) - DAY
        times = self._store.anomaly_times(sorted({a.device for a in anomalies}), since)
        for a in anomalies:
            times.setdefault(a.device, []).append(a.event_time)
        for a in anomalies:
            a.payload["device_anomalies_24h"] = sum(
                1 for t in times[a.device] if a.event_time - DAY < t <= a.event_time
            )

    def flush(self, checkpointed: Sequence[Anomaly] | None = None) -> int:
        """Send anomalies to ingestion (raises Unavailable if it is down).

        ``checkpointed``: those the checkpoint just stored, sent right away without reading
        them back. The stored unsent ones are read and sent instead when some may be left
        over: at the start (a crash between checkpoint and send), after a send or a record
        of one failed, every BACKLOG_EVERY seconds (another replica's leftovers), or when
        called without ``checkpointed``. Sending one twice is harmless (idempotency keys)."""
        now = self._clock()
        if checkpointed is not None and not self._backlog and now < self._backlog_at:
            pending = [a for a in checkpointed if is_uuid(a.source_event_id)]
            sent = 0
            # At most send_batch a call, as read back below: ingestion refuses a larger
            # IngestEvents whole (MAX_BATCH), which failed the batch and blocked the loop.
            for i in range(0, len(pending), self._send_batch):
                self._backlog = True  # until sent and recorded
                sent += self._send(pending[i : i + self._send_batch])
                self._backlog = False
            return sent
        sent = 0
        # Set until the whole backlog is read and sent: a failure part way (a send, or a
        # read of the next page) leaves it set, so the next flush reads the store again.
        self._backlog = True
        while True:
            pending = self._store.unsent(self._send_batch)
            if pending:
                sent += self._send(pending)
            if len(pending) < self._send_batch:
                self._backlog = False
                self._backlog_at = now + BACKLOG_EVERY
                return sent

    def _send(self, pending: Sequence[Anomaly]) -> int:
        ids = self._sink.send(pending)
        self._store.mark_sent(list(zip(pending, ids, strict=True)))
        rejected = sum(1 for i in ids if isinstance(i, Rejected))
        self.counters.sent += len(pending) - rejected
        self.counters.rejected += rejected
        return len(pending)
