"""Forward-only SQL migrations, one folder and one schema per service.

Each service applies its own pending files from ``migrations/<service>/NNN_name.sql`` at
start-up, recording them in ``<schema>.schema_migrations``. A transaction-scoped advisory
lock serialises replicas that start together; an applied file whose checksum changed is an
error (released migrations are immutable).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from services.core.errors import CornjacketError
from services.infra import assets

log = logging.getLogger(__name__)

MIGRATIONS_ROOT = assets.MIGRATIONS  # the checkout's, or the wheel's copy (ADR 22)
_NAME_RE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


class MigrationError(CornjacketError):
    """A migration could not be applied; the service must not start."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load(service: str, root: Path = MIGRATIONS_ROOT) -> list[Migration]:
    folder = root / service
    if not folder.is_dir():
        raise MigrationError(f"no migrations folder {folder}")
    found: list[Migration] = []
    for path in sorted(folder.iterdir()):
        if path.suffix != ".sql":
            continue
        m = _NAME_RE.match(path.name)
        if not m:
            raise MigrationError(f"{path.name}: migration files are named NNN_name.sql")
        found.append(Migration(int(m.group(1)), m.group(2), path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{folder}: two migrations share a version number")
    return found


def apply(
    url: str, service: str, *, schema: str | None = None, root: Path = MIGRATIONS_ROOT
) -> int:
    """Apply pending migrations; return how many were applied. Raises MigrationError."""
    schema = schema or service
    migrations = load(service, root)
    try:
        with psycopg.connect(url, autocommit=False, connect_timeout=10) as conn:
            # The advisory lock is held until commit: replicas starting together queue here,
            # and the second one finds everything applied.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"cj-migrate:{schema}",))
            # CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema
            # exists; a service's own login role (`cornjacket db-roles`) owns its schema only.
            if not conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)
            ).fetchone():
                conn.execute(f'CREATE SCHEMA "{schema}"')
            conn.execute(
                f"""CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            rows = conn.execute(
                f'SELECT version, name, checksum FROM "{schema}".schema_migrations'
            ).fetchall()
            applied = {r[0]: (r[1], r[2]) for r in rows}
            count = 0
            for mig in migrations:
                if mig.version in applied:
                    if applied[mig.version][1] != mig.checksum:
                        raise MigrationError(
                            f"{service} migration {mig.version:03d}_{mig.name} was changed after "
                            "it was applied; released migrations are immutable, add a new one"
                        )
                    continue
                try:
                    conn.execute(f'SET LOCAL search_path TO "{schema}", public')
                    conn.execute(mig.sql.encode())
                except psycopg.Error as e:
                    raise MigrationError(
                        f"{service} migration {mig.version:03d}_{mig.name} failed: {e}"
                    ) from e
                conn.execute(
                    f'INSERT INTO "{schema}".schema_migrations (version, name, checksum) '
                    "VALUES (%s, %s, %s)",
                    (mig.version, mig.name, mig.checksum),
                )
                log.info("applied migration", extra={"migration": f"{mig.version:03d}_{mig.name}"})
                count += 1
            conn.commit()
            return count
    except psycopg.OperationalError as e:
        raise MigrationError(f"cannot reach the database to migrate {service}: {e}") from e
