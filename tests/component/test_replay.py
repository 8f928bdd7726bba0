"""`cornjacket replay`: rebuild projections from the event store, build aside and swap."""

from __future__ import annotations

import subprocess

import psycopg
import pytest

from bench.histories import apply_live, history, store_events
from services.cli.embedded import EmbeddedBroker
from tests.support import consume_events, cornjacket, fetch_one

pytestmark = pytest.mark.component


def replay(database: str, *args: str) -> subprocess.CompletedProcess[str]:
    return cornjacket(
        "replay",
        *args,
        env={"CJ_INGESTION_DATABASE_URL": database, "CJ_EVENTHANDLER_DATABASE_URL": database},
        timeout=300,
    )


def test_rebuild_matches_live_and_repairs_damage(database: str) -> None:
    events = history(3000, aggregates=150)
    store_events(database, events)
    apply_live(database, events)

    clean = replay(database, "--check")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "3,000 events" in clean.stdout and "0 row(s)" in clean.stdout
    assert "ev/s" in clean.stderr and "100.0%" in clean.stderr  # progress with rate

    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(
            "UPDATE eventhandler.projections SET state = '{\"value\": -999}' "
            "WHERE projection_type = 'sensor_state' AND aggregate_id = 'dev-1'"
        )
        conn.execute(
            "DELETE FROM eventhandler.projections "
            "WHERE projection_type = 'user_session' AND aggregate_id = 'user-2'"
        )
        before_id = conn.execute(
            "SELECT projection_id FROM eventhandler.projections "
            "WHERE projection_type = 'sensor_state' AND aggregate_id = 'dev-1'"
        ).fetchone()
    damaged = replay(database, "--check")
    assert damaged.returncode == 3 and "2 row(s)" in damaged.stdout, damaged.stdout

    done = replay(database)
    assert done.returncode == 0, done.stderr
    assert "swapped in" in done.stdout
    assert replay(database, "--check").returncode == 0
    newest = max(
        (e for e in events if e.aggregate_id == "dev-1"), key=lambda e: (e.event_time, e.event_id)
    )
    row = fetch_one(
        database,
        "SELECT state, last_event_id::text, projection_id FROM eventhandler.projections "
        "WHERE projection_type = 'sensor_state' AND aggregate_id = 'dev-1'",
    )
    assert row is not None and row[0] == newest.payload and row[1] == newest.event_id
    assert before_id is not None and row[2] == before_id[0]  # ids stay stable across a swap
    assert fetch_one(
        database,
        "SELECT count(*) FROM eventhandler.projections "
        "WHERE projection_type = 'user_session' AND aggregate_id = 'user-2'",
    ) == (1,)


def test_one_projection_type_and_bad_arguments(database: str) -> None:
    done = replay(database, "--projection", "user_session", "--check")
    assert done.returncode in (0, 3), done.stderr
    assert "user_session" in done.stdout and "sensor_state" not in done.stdout
    bad = replay(database, "--projection", "nope")
    assert bad.returncode == 2 and "invalid choice: 'nope'" in bad.stderr


def test_republish_sends_stored_events_to_the_bus_again(
    database: str, broker: EmbeddedBroker
) -> None:
    events = history(40, aggregates=5, seed=11)
    store_events(database, events)
    since = min(e.ingested_at for e in events).isoformat()
    done = cornjacket(
        "republish",
        "--since",
        since,
        env={
            "CJ_INGESTION_DATABASE_URL": database,
            # republish is recorded in the event handler's audit log (ADR 16)
            "CJ_EVENTHANDLER_DATABASE_URL": database,
            "CJ_REDPANDA_BROKERS": broker.bootstrap,
        },
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "republished" in done.stdout and "100.0%" in done.stderr
    wanted = {e.event_id for e in events if e.event_type == "sensor.reading"}
    got = consume_events(
        broker.bootstrap, "sensor-events", lambda e: e.event_id in wanted, len(wanted)
    )
    assert {e.event_id for e in got} == wanted
    bad = cornjacket("republish", "--since", "yesterday")
    assert bad.returncode == 2 and "not an ISO 8601 time" in bad.stderr
