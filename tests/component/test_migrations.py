from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from services.infra import migrations
from services.infra.migrations import MigrationError

pytestmark = pytest.mark.component


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
