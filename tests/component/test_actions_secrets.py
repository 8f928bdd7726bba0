"""Signing secrets at rest: sealed (AES-GCM) in PostgreSQL, a prefix only in API answers,
rules stored in plaintext before migration 003 sealed at start, and a key rotation with
`cornjacket rotate-secrets-key` after which signatures still verify."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import uuid_utils
from cornjacket_sdk.webhooks import verify

from services.actions import secretbox
from services.actions.grpc_api import rule_to_proto
from services.actions.rules import RuleDraft, Target
from services.actions.signing import signature_headers
from services.actions.store import PostgresActionStore
from services.cli.main import main as cli
from services.infra import migrations
from services.infra.postgres import open_pool

pytestmark = pytest.mark.component

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SECRET = "whsec_" + base64.b64encode(b"z" * 32).decode()


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One key for the module's database (a rotation re-seals every rule in it)."""
    path = tmp_path_factory.mktemp("keys") / "actions" / "secrets.key"
    secretbox.ensure_key_file(path)
    return path


@pytest.fixture
async def store(database: str, key_file: Path) -> AsyncIterator[PostgresActionStore]:
    await asyncio.to_thread(migrations.apply, database, "actions")
    box = secretbox.from_settings("", key_file)
    async with open_pool(database, max_size=2, acquire_timeout=5, name="s") as pool:
        yield PostgresActionStore(pool, box)


def stored(database: str, rule_id: str) -> list[str]:
    with psycopg.connect(database) as conn:
        row = conn.execute(
            "SELECT secrets FROM actions.rules WHERE rule_id = %s", (rule_id,)
        ).fetchone()
    assert row is not None
    return list(row[0])


def keys_in(path: Path) -> list[str]:
    return path.read_text().split()


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


async def create(store: PostgresActionStore) -> str:
    rule_id = str(uuid_utils.uuid7())
    draft = RuleDraft("r", "sensor.reading", "", Target("https://e.com/h", {}, (SECRET,)))
    await store.create(rule_id, draft, T0)
    return rule_id


async def test_the_secret_column_holds_no_plaintext_and_the_api_a_prefix_only(
    store: PostgresActionStore, database: str
) -> None:
    rule_id = await create(store)
    [column] = stored(database, rule_id)
    key = SECRET.removeprefix("whsec_")
    assert column.startswith("cj1:") and key not in column and key[:8] not in column
    rule = await store.get(rule_id)
    assert rule is not None and rule.target.secrets == (SECRET,), "opened for signing"
    assert list(rule_to_proto(rule).target.secrets) == [SECRET[:10] + "…"]
    # The database itself refuses a plaintext secret (migration 003).
    with psycopg.connect(database) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "UPDATE actions.rules SET secrets = %s WHERE rule_id = %s", ([SECRET], rule_id)
        )


async def test_plaintext_secrets_stored_before_sealing_are_sealed_at_start(
    store: PostgresActionStore, database: str
) -> None:
    rule_id = await create(store)
    with psycopg.connect(database) as conn:  # as a rule stored before migration 003
        conn.execute("ALTER TABLE actions.rules DROP CONSTRAINT rules_secrets_sealed")
        conn.execute(
            "UPDATE actions.rules SET secrets = %s WHERE rule_id = %s", ([SECRET], rule_id)
        )
    try:
        assert await store.seal_plaintext_secrets() >= 1
        assert await store.seal_plaintext_secrets() == 0, "idempotent"
        [column] = stored(database, rule_id)
        assert column.startswith("cj1:")
        rule = await store.get(rule_id)
        assert rule is not None and rule.target.secrets == (SECRET,)
    finally:
        with psycopg.connect(database) as conn:
            conn.execute(
                "ALTER TABLE actions.rules ADD CONSTRAINT rules_secrets_sealed "
                "CHECK (actions.all_sealed(secrets)) NOT VALID"
            )


async def test_signatures_verify_after_rotating_the_key_with_the_cli(
    store: PostgresActionStore, database: str, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rule_id = await create(store)
    before = stored(database, rule_id)
    old_key = keys_in(key_file)[0]
    monkeypatch.setenv("CJ_ACTIONS_DATABASE_URL", database)
    monkeypatch.setenv("CJ_ACTIONS_SECRETS_KEY_FILE", str(key_file))
    monkeypatch.delenv("CJ_ACTIONS_SECRETS_KEY", raising=False)
    assert await asyncio.to_thread(cli, ["rotate-secrets-key"]) == 0
    after = stored(database, rule_id)
    new_key = keys_in(key_file)[0]
    assert new_key != old_key and mode(key_file) == 0o600
    kid = secretbox.key_id(base64.b64decode(new_key))
    assert after != before and all(s.startswith(f"cj1:{kid}:") for s in after)
    # The running store (same process, key file re-read) and a fresh one both open it.
    for box in (None, secretbox.from_settings("", key_file)):
        s = store if box is None else store.__class__(store._pool, box)
        rule = await s.get(rule_id)
        assert rule is not None
        body = b'{"x":1}'
        headers = signature_headers(rule.target.secrets, "msg-1", 1_700_000_000, body)
        assert verify(SECRET, headers, body, now=1_700_000_000) is not None
    # A rotation again drops the oldest key: only the last two remain.
    assert await asyncio.to_thread(cli, ["rotate-secrets-key"]) == 0
    assert old_key not in keys_in(key_file)
