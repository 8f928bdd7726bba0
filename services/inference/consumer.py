"""The inference side of the shared consumer loop (services/infra/consumer_loop.py): decode a
polled batch, apply it (one checkpoint), send the pending anomalies; the loop commits after.
Unavailable (database or ingestion down) makes the loop block on the same batch."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE
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
BATCH_MESSAGES = Histogram(
    "cornjacket_inference_batch_messages",
    "Messages per polled batch",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
)
BUS_DELAY_SECONDS = Histogram(
    "cornjacket_inference_bus_delay_seconds",
    "From a message's producer timestamp (the relay's publish) to its batch's start",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0),
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
        BATCH_MESSAGES.observe(len(msgs))
        now_ms = time.time() * 1000
        for m in msgs:
            kind, ts = m.timestamp()
            if kind != TIMESTAMP_NOT_AVAILABLE and ts > 0:
                BUS_DELAY_SECONDS.observe(max(0.0, now_ms - ts) / 1000)
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
