"""Times are UTC whatever the PostgreSQL server's or database's time zone: a rebuild writes
the same projections as the live handler, and pooled connections read UTC."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from bench.histories import apply_live, history, store_events
from services.cli.embedded import EmbeddedPostgres
from services.infra.postgres import open_pool
from tests.support import cornjacket, unique

pytestmark = pytest.mark.component

ZONE = "Asia/Kolkata"  # +05:30: no offset a UTC reading could be mistaken for


@pytest.fixture(scope="module")
def kolkata(postgres: EmbeddedPostgres) -> str:
    """A database whose sessions default to another time zone than UTC."""
    name = unique("tz").replace("-", "_")
    with psycopg.connect(postgres.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute(f"ALTER DATABASE \"{name}\" SET timezone = '{ZONE}'")
    url = postgres.url_for(name)
    with psycopg.connect(url) as conn:
        assert conn.execute("SHOW TimeZone").fetchone() == (ZONE,)
    return url


def projections(url: str) -> list[tuple[Any, ...]]:
    """Every row as text, byte for byte (updated_at aside: a rebuild sets it to the event's
    ingestion time by design)."""
    with psycopg.connect(url) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return conn.execute(
            "SELECT projection_type, aggregate_id, state::text, last_event_id::text, "
            "last_event_timestamp::text FROM eventhandler.projections ORDER BY 1, 2"
        ).fetchall()


def test_rebuild_in_another_time_zone_equals_the_live_projections(kolkata: str) -> None:
    events = history(400, aggregates=20, seed=5)
    store_events(kolkata, events)
    apply_live(kolkata, events)
    live = projections(kolkata)
    logins = [r for r in live if r[0] == "user_session"]
    assert logins and all('"last_login_at": "2026-' in r[2] and "+00:00" in r[2] for r in logins)

    env = {"CJ_INGESTION_DATABASE_URL": kolkata, "CJ_EVENTHANDLER_DATABASE_URL": kolkata}
    check = cornjacket("replay", "--check", env=env, timeout=300)
    assert check.returncode == 0 and "0 row(s)" in check.stdout, check.stdout + check.stderr
    done = cornjacket("replay", env=env, timeout=300)
    assert done.returncode == 0 and "swapped in" in done.stdout, done.stdout + done.stderr
    assert projections(kolkata) == live


def test_pooled_connections_read_utc(kolkata: str) -> None:
    async def read() -> tuple[Any, ...]:
        async with (
            open_pool(kolkata, max_size=1, acquire_timeout=10, name="tz") as pool,
            pool.connection() as conn,
        ):
            cur = await conn.execute(
                "SELECT current_setting('TimeZone') AS tz, '2026-06-01T12:00:00Z'::timestamptz AS t"
            )
            row = await cur.fetchone()
        assert row is not None
        return row["tz"], row["t"].isoformat()

    assert asyncio.run(read()) == ("UTC", "2026-06-01T12:00:00+00:00")
