"""The MQTT gateway as a real process: configuration errors, limits and clean shutdown."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.cli.processes import Child, env_with, free_port
from tests.support import MqttDevice, eventually, service_process, unique

pytestmark = pytest.mark.component


def serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli.main", "serve", "mqtt"],
        env=env_with({"CJ_LOG_FORMAT": "text", **env}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_production_refuses_to_start_without_credentials() -> None:
    done = serve({"CJ_ENVIRONMENT": "production"})
    assert done.returncode == 1
    assert "CJ_MQTT_USERS_FILE (or CJ_MQTT_USERS) is required" in done.stderr


def test_users_from_a_variable_are_checked_too() -> None:
    done = serve({"CJ_ENVIRONMENT": "production", "CJ_MQTT_USERS": "[users\n"})
    assert done.returncode == 1
    assert "CJ_MQTT_USERS: the MQTT users TOML cannot be read" in done.stderr


def test_a_broken_users_file_is_named(tmp_path: Path) -> None:
    users = tmp_path / "users.toml"
    users.write_text('[users.dev]\npassword = "plaintext"\n')
    done = serve({"CJ_MQTT_USERS_FILE": str(users)})
    assert done.returncode == 1
    assert "users.dev.password must be an argon2 hash" in done.stderr


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[int, Child]]:
    """A gateway whose ingestion address has nothing listening: publishes stay unsettled."""
    port, health = free_port(), free_port()
    env = {
        "CJ_MQTT_PORT": str(port),
        "CJ_MQTT_HEALTH_PORT": str(health),
        "CJ_MQTT_INGESTION_ADDRESS": f"127.0.0.1:{free_port()}",
        "CJ_MQTT_MAX_CONNECTIONS": "2",
        "CJ_MQTT_SHUTDOWN_GRACE": "1s",
        "CJ_MQTT_ALLOW_ANONYMOUS": "true",
    }
    with service_process("mqtt", env, tmp_path, f"127.0.0.1:{health}") as child:
        yield port, child


def test_connections_beyond_the_limit_are_refused(gateway: tuple[int, Child]) -> None:
    port, _ = gateway
    devices = [MqttDevice(port, unique("d")) for _ in range(2)]
    try:
        assert all(d.connected for d in devices)
        extra = MqttDevice(port, unique("d"))
        assert not extra.connected
        assert "unavailable" in extra.connect_reason.lower(), extra.connect_reason
        extra.close()
    finally:
        for d in devices:
            d.close()


def test_unsettled_publishes_stay_unacknowledged_and_shutdown_disconnects(
    gateway: tuple[int, Child],
) -> None:
    port, child = gateway
    dev = MqttDevice(port, unique("d"))
    disconnected: list[object] = []
    dev.client.on_disconnect = lambda c, u, flags, reason, p: disconnected.append(reason)
    mid = dev.publish("cornjacket/v1/events/sensor.reading/x", {"value": 1, "unit": "C"})
    with pytest.raises(AssertionError):
        dev.wait_acked(mid, timeout=1.5)  # ingestion is unreachable: nothing was committed
    assert child.stop(deadline=15) == 0
    eventually(lambda: disconnected, what="the client sees the connection close")
    assert mid not in dev.acked
    dev.client.loop_stop()
