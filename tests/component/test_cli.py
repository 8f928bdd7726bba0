"""The `cornjacket` command as a user runs it: help, bad configuration, busy ports."""

from __future__ import annotations

import socket
from pathlib import Path

import jwt
import pytest

from services.cli import control
from tests.support import cornjacket

pytestmark = pytest.mark.component


def test_help_lists_commands() -> None:
    out = cornjacket("--help")
    assert out.returncode == 0
    for command in ("up", "serve", "migrate", "postgres", "broker", "envoy-config"):
        assert command in out.stdout


def test_broker_swap_asks_the_running_up_and_refuses_without_one(tmp_path: Path) -> None:
    env = {"CJ_DATA_DIR": str(tmp_path)}
    out = cornjacket("broker", "swap", env=env)
    assert out.returncode == 1
    assert f"no `cornjacket up` is running on {tmp_path}" in out.stderr
    control.mark_running(tmp_path)  # this test's process stands in for `cornjacket up`
    try:
        out = cornjacket("broker", "swap", env=env)
        assert out.returncode == 0, out.stderr
        assert "asked the running `cornjacket up` to swap the broker" in out.stdout
        assert control.take_requests(tmp_path) == ["swap-broker"]
    finally:
        control.mark_stopped(tmp_path)
    bad = cornjacket("broker", "flush", env=env)
    assert bad.returncode == 2 and "invalid choice: 'flush'" in bad.stderr


def test_busy_edge_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = cornjacket("up", env={"CJ_EDGE_PORT": str(port), "CJ_DATA_DIR": str(tmp_path)})
    assert out.returncode == 1
    assert f"port {port} (CJ_EDGE_PORT) is already in use" in out.stderr
    assert not (tmp_path / "pgdata").exists()  # nothing was started


@pytest.mark.parametrize(
    ("service", "var", "value", "message"),
    [
        (
            "ingestion",
            "CJ_OUTBOX_BATCH_SIZE",
            "lots",
            "CJ_OUTBOX_BATCH_SIZE='lots' is not an integer",
        ),
        ("query", "CJ_QUERY_DATABASE_URL", "mysql://db", "is not a postgresql:// URL"),
        ("eventhandler", "CJ_EVENTHANDLER_POLL_TIMEOUT", "fast", "is not a duration"),
        ("tsdb", "CJ_TSDB_FETCH_LINGER", "5s", "CJ_TSDB_FETCH_LINGER='5s' is more than 1s"),
    ],
)
def test_bad_configuration_fails_fast_naming_the_variable(
    service: str, var: str, value: str, message: str
) -> None:
    out = cornjacket("serve", service, env={var: value})
    assert out.returncode == 1
    assert message in out.stderr


def test_unreachable_database_refuses_to_start() -> None:
    from services.cli.processes import free_port

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here
    env = {
        "CJ_INGESTION_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/none",
        "CJ_INGESTION_PORT": str(free_port()),
    }
    out = cornjacket("serve", "ingestion", env=env, timeout=60)
    assert out.returncode == 1
    assert "cannot reach the database to migrate ingestion" in out.stderr


def test_token_create_signs_with_the_local_key_and_rejects_bad_input(tmp_path: Path) -> None:
    env = {"CJ_DATA_DIR": str(tmp_path)}
    out = cornjacket("token", "--help", env=env)
    assert out.returncode == 0 and "create" in out.stdout and "rotate-key" in out.stdout
    out = cornjacket("token", env=env)
    assert out.returncode == 1 and "no signing key" in out.stderr
    out = cornjacket(
        "token",
        "create",
        "--subject",
        "ci",
        "--scope",
        "read",
        "--scope",
        "events:write",
        "--ttl",
        "2h",
        env=env,
    )
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    jwks = jwt.PyJWKSet.from_json((tmp_path / "auth" / "jwks.json").read_text())
    kid = jwt.get_unverified_header(token)["kid"]
    claims = jwt.decode(
        token, jwks[kid].key, algorithms=["ES256"], audience="cornjacket", issuer="cornjacket-local"
    )
    assert (claims["sub"], claims["scope"]) == ("ci", "read events:write")
    assert claims["exp"] - claims["iat"] == 7200
    bad_ttl = cornjacket(
        "token", "create", "--subject", "s", "--scope", "read", "--ttl", "soon", env=env
    )
    assert bad_ttl.returncode == 2 and "'soon' is not a duration" in bad_ttl.stderr
    bad_scope = cornjacket("token", "create", "--subject", "s", "--scope", "events:writer", env=env)
    assert bad_scope.returncode == 1
    assert "unknown scope 'events:writer': use one or more of events:write, read, admin" in (
        bad_scope.stderr
    )
    admin = cornjacket("token", env=env)
    assert admin.returncode == 0, admin.stderr
    path = tmp_path / "admin.token"
    assert path.read_text().strip() == admin.stdout.strip()
    assert path.stat().st_mode & 0o777 == 0o600
    assert cornjacket("token", env=env).stdout == admin.stdout  # printed again, not re-signed
