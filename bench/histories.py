"""Synthetic event histories: the replay benchmark and the rebuild tests share them."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import psycopg
import uuid_utils

from services.core.events import Event
from services.eventhandler.projection_store import PostgresProjectionStore
from services.eventhandler.projectors import default_registry
from services.eventhandler.service import EventHandler
from services.infra import migrations
from services.infra.codec import encode_event

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def history(n: int, aggregates: int, seed: int = 7) -> list[Event]:
    """Readings and logins with event times out of arrival order, as devices send them."""
    rnd = random.Random(seed)
    events = []
    for i in range(n):
        login = i % 5 == 0
        agg = f"{'user' if login else 'dev'}-{rnd.randrange(aggregates)}"
        when = T0 + timedelta(seconds=i + rnd.randint(-30, 30))
        payload = (
            {"user_id": agg, "ip": f"10.0.0.{i % 250}"}
            if login
            else {"value": round(rnd.uniform(-10, 40), 2), "unit": "C"}
        )
        events.append(
            Event(
                str(uuid_utils.uuid7()),
                "user.login" if login else "sensor.reading",
                agg,
                when,
                T0 + timedelta(seconds=i),
                payload,
            )
        )
    return events


def store_events(url: str, events: list[Event]) -> None:
    migrations.apply(url, "ingestion")
    rows = [
        {
            "event_id": e.event_id,
            "event_type": e.event_type,
            "aggregate_id": e.aggregate_id,
            "event_time": e.event_time.isoformat(),
            "ingested_at": e.ingested_at.isoformat(),
            "payload": e.payload,
            "metadata": {"trace_id": "", "source": "grpc", "schema_version": 1},
        }
        for e in events
    ]
    with psycopg.connect(url, autocommit=True) as conn:
        for i in range(0, len(rows), 5000):
            conn.execute(
                "INSERT INTO ingestion.event_store (event_id, event_type, aggregate_id, "
                "event_time, ingested_at, payload, metadata) "
                "SELECT (r->>'event_id')::uuid, r->>'event_type', r->>'aggregate_id', "
                "(r->>'event_time')::timestamptz, (r->>'ingested_at')::timestamptz, "
                "r->'payload', r->'metadata' FROM jsonb_array_elements(%s::jsonb) AS r",
                (json.dumps(rows[i : i + 5000]),),
            )


def apply_live(url: str, events: list[Event], batch: int = 500) -> None:
    """Fold events into eventhandler.projections the way the live handler does: its own
    core and store, batch by batch in arrival order."""
    migrations.apply(url, "eventhandler")
    store = PostgresProjectionStore(url, "event-handler")

    class Clock:
        def now(self) -> datetime:
            return datetime.now(UTC)

    handler = EventHandler(store, default_registry(), Clock())
    try:
        for i in range(0, len(events), batch):
            handler.handle([(e, encode_event(e), "") for e in events[i : i + batch]])
    finally:
        store.close()
