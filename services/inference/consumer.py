"""The inference side of the shared consumer loop (services/infra/consumer_loop.py): decode a
polled batch, apply it (one checkpoint), send the pending anomalies; the loop commits after.
Unavailable (database or ingestion down) makes the loop block on the same batch."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Message as KafkaMessage
from prometheus_client import Counter, Histogram

from services.inference.service import Counters, Inference, Message
from services.infra.codec import DecodeError, decode_event

READINGS = Counter(
    "cornjacket_inference_readings_total",
    "Readings seen by the inference service, by result",
    ["result"],
)
BATCH_SECONDS = Histogram(
    "cornjacket_inference_batch_seconds", "Time to score, learn and checkpoint one batch"
)


def to_messages(msgs: list[KafkaMessage]) -> list[Message]:
    out: list[Message] = []
    for m in msgs:
        raw = m.value() or b""
        topic, partition, offset = str(m.topic()), int(m.partition() or 0), int(m.offset() or 0)
        try:
            out.append(Message(topic, partition, offset, decode_event(raw), raw))
        except DecodeError as e:
            out.append(Message(topic, partition, offset, None, raw, str(e)))
    return out


def batch_handler(inference: Inference) -> Any:
    def handle(msgs: list[KafkaMessage]) -> None:
        before = _snapshot(inference.counters)
        start = time.perf_counter()
        inference.handle(to_messages(msgs))
        BATCH_SECONDS.observe(time.perf_counter() - start)
        after = _snapshot(inference.counters)
        for name, value in after.items():
            if value > before[name]:
                READINGS.labels(name).inc(value - before[name])

    return handle


def _snapshot(c: Counters) -> dict[str, int]:
    return {
        "scored": c.scored,
        "learned": c.learned,
        "late": c.late,
        "future": c.future,
        "skipped": c.skipped,
        "already_applied": c.already_applied,
        "anomalies": c.anomalies,
        "sent": c.sent,
        "rejected": c.rejected,
        "conflicts": c.conflicts,
        "unusable": c.unusable,
        "dead_lettered": c.dead,
    }
