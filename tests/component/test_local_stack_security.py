"""The local stack's secrets and file modes: PostgreSQL asks for a password kept 0600, what
`cornjacket up` writes is its user's only, and no folder above its data is widened."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from services.cli.embedded import EmbeddedPostgres
from services.cli.processes import free_port
from tests.support import eventually

pytestmark = pytest.mark.component


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def refused_without_password(pg: EmbeddedPostgres) -> str:
    with pytest.raises(psycopg.OperationalError) as err:
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{pg.port}/postgres", connect_timeout=5)
    return str(err.value)


def test_postgres_asks_for_the_password_kept_0600(postgres: EmbeddedPostgres) -> None:
    assert "no password supplied" in refused_without_password(postgres)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            f"postgresql://postgres:guess@127.0.0.1:{postgres.port}/postgres", connect_timeout=5
        )
    with psycopg.connect(postgres.admin_url) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
    assert postgres.password and postgres.password in postgres.url
    assert mode(postgres.password_file) == 0o600


def test_a_data_dir_made_with_trust_is_moved_to_passwords(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path / "pgdata", free_port(), tmp_path / "pg.log")
    pg.start()
    pg.stop()
    # What an older cornjacket left: initdb --auth=trust and no password file.
    (pg.pgdata / "pg_hba.conf").write_text("host all all 127.0.0.1/32 trust\n")
    pg.password_file.unlink()
    again = EmbeddedPostgres(pg.pgdata, pg.port, tmp_path / "pg.log")
    again.start()
    try:
        assert again.migrated
        assert "no password supplied" in refused_without_password(again)
        with psycopg.connect(again.url) as conn:
            conn.execute("SELECT 1")
        assert mode(again.password_file) == 0o600
    finally:
        again.stop()


def test_up_writes_private_files_and_widens_no_parent(tmp_path: Path) -> None:
    parent = tmp_path / "home"
    parent.mkdir()
    parent.chmod(0o750)
    data = parent / "cj"
    ports = {
        var: str(free_port())
        for var in (
            "CJ_EDGE_PORT",
            "CJ_ENVOY_ADMIN_PORT",
            "CJ_POSTGRES_PORT",
            "CJ_BROKER_PORT",
            "CJ_INGESTION_PORT",
            "CJ_QUERY_PORT",
            "CJ_EVENTHANDLER_PORT",
            "CJ_RELAY_PORT",
            "CJ_ACTIONS_PORT",
            "CJ_MQTT_PORT",
            "CJ_MQTT_HEALTH_PORT",
            "CJ_INGESTION_METRICS_PORT",
            "CJ_RELAY_METRICS_PORT",
            "CJ_EVENTHANDLER_METRICS_PORT",
            "CJ_QUERY_METRICS_PORT",
            "CJ_MQTT_METRICS_PORT",
            "CJ_ACTIONS_METRICS_PORT",
        )
    }
    out_path = tmp_path / "up.out"
    with out_path.open("wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "services.cli.main", "up"],
            env={**os.environ, **ports, "CJ_DATA_DIR": str(data), "CJ_START_TIMEOUT": "120s"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        eventually(
            lambda: "Cornjacket is up" in out_path.read_text() or up.poll() is not None,
            timeout=180,
            what="cornjacket up to be ready",
        )
        text = out_path.read_text()
        assert "Cornjacket is up" in text, text
        assert mode(parent) == 0o750
        assert (data / "postgres.password").read_text().strip() not in text  # never printed
        assert mode(data) == 0o700
        assert mode(data / "logs") == 0o700
        logs = list((data / "logs").iterdir())
        assert logs and {p.name: mode(p) for p in logs} == {p.name: 0o600 for p in logs}
        for secret in ("postgres.password", "admin.token", "envoy.yaml"):
            assert mode(data / secret) == 0o600, secret
        keys = list((data / "auth" / "keys").iterdir())
        assert keys and all(mode(k) == 0o600 for k in keys)
        assert mode(data / "pgdata") == 0o700
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=90)


def test_mqtt_add_user_writes_the_users_file_0600(tmp_path: Path) -> None:
    users = tmp_path / "users.toml"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli.main",
            "mqtt",
            "add-user",
            "dev-1",
            "--file",
            str(users),
            "--password-stdin",
        ],
        input="s3cret-pw\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert mode(users) == 0o600
    assert "dev-1" in users.read_text()
