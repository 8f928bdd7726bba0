"""The `cornjacket` command as a user runs it: help, bad configuration, busy ports."""

from __future__ import annotations

import socket
from pathlib import Path

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
