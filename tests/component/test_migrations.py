from __future__ import annotations

import threading
import uuid
from pathlib import Path

import psycopg
import pytest

from services.cli.embedded import EmbeddedPostgres
from services.infra import migrations
from services.infra.migrations import MigrationError
from tests.support import unique

pytestmark = pytest.mark.component


def fresh_database(postgres: EmbeddedPostgres) -> str:
    """A database of this test's own (the module's ``database`` is already migrated)."""
    name = unique("m").replace("-", "_")
    with psycopg.connect(postgres.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres.url_for(name)


def test_apply_is_idempotent_and_tracked(database: str) -> None:
    first = migrations.apply(database, "ingestion")
    assert first == len(migrations.load("ingestion"))
    assert migrations.apply(database, "ingestion") == 0
    with psycopg.connect(database) as conn:
        versions = [
            r[0] for r in conn.execute("SELECT version FROM ingestion.schema_migrations ORDER BY 1")
        ]
        assert versions == [m.version for m in migrations.load("ingestion")]
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'ingestion'"
            )
        }
    assert {"outbox", "event_store", "idempotency_keys", "schema_migrations"} <= tables


def test_replicas_starting_together_do_not_race(database: str) -> None:
    results: list[int | BaseException] = []

    def run() -> None:
        try:
            results.append(migrations.apply(database, "eventhandler"))
        except BaseException as e:
            results.append(e)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    released = len(migrations.load("eventhandler"))
    assert sorted(r for r in results if isinstance(r, int)) == [0, 0, 0, released], results


def test_changed_or_failing_migration_refuses(database: str, tmp_path: Path) -> None:
    root = tmp_path / "migrations"
    (root / "demo").mkdir(parents=True)
    (root / "demo" / "001_a.sql").write_text("CREATE TABLE a (id int);")
    assert migrations.apply(database, "demo", root=root) == 1
    (root / "demo" / "001_a.sql").write_text("CREATE TABLE a (id bigint);")
    with pytest.raises(MigrationError, match="was changed after it was applied"):
        migrations.apply(database, "demo", root=root)
    (root / "demo" / "001_a.sql").write_text("CREATE TABLE a (id int);")
    (root / "demo" / "002_b.sql").write_text("CREATE TABLE b (id nosuchtype);")
    with pytest.raises(MigrationError, match="002_b failed"):
        migrations.apply(database, "demo", root=root)
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM demo.schema_migrations").fetchone() == (1,)


def test_dlq_uniqueness_applies_to_a_database_that_already_has_duplicates(
    postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    """Released before the dead letters were unique, a DLQ may hold one row per redelivery.
    The migration folds each (consumer, event) into one row: the replayed one if any, else
    a pending one, else a discarded one (earliest first), counting the others' attempts."""
    url = fresh_database(postgres)
    before = tmp_path / "migrations"
    (before / "eventhandler").mkdir(parents=True)
    for m in migrations.load("eventhandler"):
        if m.version <= 3:
            (before / "eventhandler" / f"{m.version:03d}_{m.name}.sql").write_text(m.sql)
    assert migrations.apply(url, "eventhandler", root=before) == 3
    poison, replayed, undecodable = (str(uuid.uuid4()) for _ in range(3))
    rows = [
        # (consumer, event_id, payload, error, failed_at second, retry_count, status)
        ("event-handler", poison, b"p", "first", 1, 0, "pending"),
        ("event-handler", poison, b"p", "second", 2, 2, "pending"),
        ("event-handler", poison, b"p", "third", 3, 0, "discarded"),
        ("other", poison, b"p", "other consumer", 4, 0, "pending"),
        ("event-handler", replayed, b"r", "a", 1, 0, "pending"),
        ("event-handler", replayed, b"r", "b", 2, 1, "replayed"),
        ("event-handler", None, b"\x00junk" + undecodable.encode(), "u1", 1, 0, "pending"),
        ("event-handler", None, b"\x00junk" + undecodable.encode(), "u2", 2, 0, "pending"),
        ("event-handler", None, b"\x00other junk", "u3", 3, 0, "pending"),
    ]
    with psycopg.connect(url, autocommit=True) as conn:
        for consumer, eid, payload, error, sec, retries, status in rows:
            conn.execute(
                "INSERT INTO eventhandler.dlq (consumer, event_id, event_payload, error_message,"
                " failed_at, retry_count, status)"
                " VALUES (%s, %s, %s, %s, '2026-01-01T00:00:00Z'::timestamptz + %s * '1s'::interval,"
                " %s, %s)",
                (consumer, eid, payload, error, sec, retries, status),
            )
    assert migrations.apply(url, "eventhandler") == len(migrations.load("eventhandler")) - 3
    with psycopg.connect(url) as conn:
        left = conn.execute(
            "SELECT consumer, coalesce(event_id::text, ''), error_message, retry_count, status"
            " FROM eventhandler.dlq ORDER BY consumer, error_message"
        ).fetchall()
        assert left == [
            ("event-handler", replayed, "b", 2, "replayed"),
            ("event-handler", poison, "first", 4, "pending"),
            ("event-handler", "", "u1", 1, "pending"),
            ("event-handler", "", "u3", 0, "pending"),
            ("other", poison, "other consumer", 0, "pending"),
        ]
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO eventhandler.dlq (consumer, event_id, event_payload, error_message)"
                " VALUES ('event-handler', %s, 'p', 'again')",
                (poison,),
            )
        conn.rollback()
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO eventhandler.dlq (consumer, event_payload, error_message)"
                " VALUES ('event-handler', %s, 'again')",
                (b"\x00other junk",),
            )


def migrations_up_to(service: str, version: int, root: Path) -> Path:
    (root / service).mkdir(parents=True)
    for m in migrations.load(service):
        if m.version <= version:
            (root / service / f"{m.version:03d}_{m.name}.sql").write_text(m.sql)
    return root


def apply_in_thread(url: str, root: Path | None) -> tuple[threading.Thread, list[object]]:
    """Apply ingestion's migrations in a thread; its outcome (a count or the error) lands in
    the list. A migration queued behind a lock shows as a thread still running."""
    outcome: list[object] = []

    def run() -> None:
        try:
            if root is None:
                outcome.append(migrations.apply(url, "ingestion"))
            else:
                outcome.append(migrations.apply(url, "ingestion", root=root))
        except MigrationError as e:
            outcome.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_outbox_slot_migrations_never_queue_behind_live_writers_and_010_takes_no_table_lock(
    postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    """009 rewrites the outbox (ACCESS EXCLUSIVE): queued behind an open relay batch it used
    to block every outbox insert behind it for as long as that batch lasted; now it gives up
    after its lock_timeout, naming the wait. 010 built an index and dropped one in the
    migrations' transaction, blocking inserts while it built over a backlog and waiting
    behind open batches; now 009 builds the (slot, seq) index while it holds the table
    anyway, and 010 only adds the claim function: it runs beside an open insert."""
    url = fresh_database(postgres)
    assert (
        migrations.apply(url, "ingestion", root=migrations_up_to("ingestion", 8, tmp_path / "a"))
        == 8
    )
    with psycopg.connect(url) as batch:  # an old relay's batch, open
        batch.execute("SELECT outbox_id FROM ingestion.outbox FOR UPDATE").fetchall()
        thread, outcome = apply_in_thread(url, migrations_up_to("ingestion", 9, tmp_path / "b"))
        thread.join(30)
        queued = thread.is_alive()
        batch.rollback()
    thread.join(60)
    assert not queued, "009 queued behind an open relay batch (and every insert behind it)"
    (error,) = outcome
    assert isinstance(error, MigrationError) and "lock timeout" in str(error)
    assert (
        migrations.apply(url, "ingestion", root=migrations_up_to("ingestion", 9, tmp_path / "c"))
        == 1
    )
    with psycopg.connect(url) as writer:  # an insert in flight (ingestion's group commit)
        writer.execute(
            "INSERT INTO ingestion.outbox (outbox_id, event_payload) VALUES (%s, %s)",
            (str(uuid.uuid4()), '{"aggregate_id": "a"}'),
        )
        thread, outcome = apply_in_thread(url, None)
        thread.join(30)
        queued = thread.is_alive()
        writer.rollback()
    thread.join(60)
    assert not queued, "010 waited for a table lock behind an open insert"
    assert outcome == [len(migrations.load("ingestion")) - 9]
    with psycopg.connect(url) as conn:
        indexes = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'ingestion' "
            "AND tablename = 'outbox' ORDER BY indexname"
        ).fetchall()
    assert [i for (i,) in indexes if i != "outbox_pkey"] == ["outbox_slot_seq_idx"]
