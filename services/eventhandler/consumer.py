"""The event handler's side of the shared consumer loop (services/infra/consumer_loop.py):
decode a polled batch and fold it into projections, recording handler metrics."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Consumer, Message

from services.core.events import Event
from services.eventhandler.service import EventHandler
from services.infra import metrics
from services.infra.codec import DecodeError, decode_event
from services.infra.consumer_loop import header


def decode(msgs: list[Message]) -> list[tuple[Event | None, bytes, str]]:
    items: list[tuple[Event | None, bytes, str]] = []
    for m in msgs:
        raw = m.value() or b""
        try:
            items.append((decode_event(raw), raw, ""))
        except DecodeError as e:
            items.append((None, raw, str(e)))
    return items


def batch_handler(handler: EventHandler) -> Any:
    """The loop's callback: raises Unavailable (the loop blocks) while the database is down."""

    def handle(msgs: list[Message]) -> None:
        start = time.perf_counter()
        outcome = handler.handle(decode(msgs))
        metrics.HANDLER_SECONDS.observe(time.perf_counter() - start)
        dead = len(outcome.dead)
        metrics.HANDLER_EVENTS.labels("applied").inc(outcome.events - outcome.skipped - dead)
        metrics.HANDLER_EVENTS.labels("skipped").inc(outcome.skipped)
        metrics.HANDLER_EVENTS.labels("dead_lettered").inc(dead)

    return handle


def span_name(msg: Message) -> str:
    return f"project {header(msg, 'event_type') or '(unknown type)'}"


def consumer_from(config: dict[str, Any]) -> Consumer:
    return Consumer(config)
