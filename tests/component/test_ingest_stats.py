"""Ingestion's overview figures (issue 19) against real PostgreSQL: the outbox's depth and
oldest row move as events are accepted and nothing relays them; the event store's last
minute counts only recent events; counts stop at their cap."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from services.cli.embedded import EmbeddedPostgres
from services.core.events import Event, Metadata
from services.infra import migrations
from services.infra.postgres import open_pool
from services.ingestion import stats_api
from services.ingestion.outbox_store import PostgresOutbox
from services.ingestion.ports import PendingEvent
from services.ingestion.stats_api import IngestStatsReader
from tests.support import unique


def fresh_database(postgres: EmbeddedPostgres) -> str:
    """ingestion's schema and no relay reading its outbox."""
    name = unique("t").replace("-", "_")
    with psycopg.connect(postgres.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = postgres.url_for(name)
    migrations.apply(url, "ingestion")
    return url


def event(agg: str, ingested_at: datetime) -> Event:
    return Event(
        str(uuid.uuid4()), "sensor.reading", agg, ingested_at, ingested_at, {"v": 1}, Metadata()
    )


async def test_the_figures_move_with_the_outbox_and_the_event_store(
    postgres: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = fresh_database(postgres)
    now = datetime.now(UTC)
    async with open_pool(url, max_size=2, acquire_timeout=30, name="t") as pool:
        reader = IngestStatsReader(pool)
        empty = await reader.read()
        assert (empty.accepted_last_minute, empty.outbox_depth) == (0, 0)
        assert empty.outbox_oldest_age_seconds == 0

        # 30 accepted events over 30 aggregates (so several outbox slots), not relayed
        outbox = PostgresOutbox(pool)
        await outbox.append(
            [PendingEvent(event(f"agg-{n}", now)) for n in range(30)], retention_since=now
        )
        waiting = await reader.read()
        assert waiting.outbox_depth == 30 and not waiting.outbox_depth_capped
        assert 0 <= waiting.outbox_oldest_age_seconds < 60

        # the event store: 12 events of the last minute, 5 older ones not counted
        with psycopg.connect(url) as conn:
            for n, at in enumerate([now] * 12 + [now - timedelta(minutes=2)] * 5):
                e = event(f"stored-{n}", at)
                conn.execute(
                    "INSERT INTO ingestion.event_store (event_id, event_type, aggregate_id,"
                    " event_time, ingested_at, payload, metadata)"
                    " VALUES (%s, %s, %s, %s, %s, '{}', '{}')",
                    (e.event_id, e.event_type, e.aggregate_id, at, at),
                )
        stored = await reader.read()
        assert stored.accepted_last_minute == 12 and not stored.accepted_last_minute_capped

        monkeypatch.setattr(stats_api, "COUNT_CAP", 10)
        capped = await reader.read()
        assert (capped.accepted_last_minute, capped.accepted_last_minute_capped) == (10, True)
        assert (capped.outbox_depth, capped.outbox_depth_capped) == (10, True)
