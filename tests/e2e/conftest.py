"""The whole stack, started the way `cornjacket up` starts it, on free ports."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import httpx
import pytest

from services.cli.stack import Stack
from services.mqtt.access import hash_password, render_user
from tests.support import running_stack

# Devices of the end-to-end stack's MQTT users file (anonymous access stays on, as in
# development, so other tests can publish without credentials).
MQTT_PASSWORD = "correct-horse-1"
MQTT_DEVICES = ("device-a", "device-b")

# The action orchestrator's policy, shortened so the webhook tests run in seconds: retries
# after 200 ms, a 5 s breaker cooldown, a 3 s attempt timeout, 300 deliveries a minute.
ACTIONS_ENV = {
    "CJ_ACTIONS_POLL_TIMEOUT": "100ms",
    "CJ_ACTIONS_POLL_INTERVAL": "200ms",
    "CJ_ACTIONS_BACKOFF": "200ms,200ms,200ms,200ms,200ms",
    "CJ_ACTIONS_BACKOFF_JITTER": "0.1",
    "CJ_ACTIONS_TIMEOUT": "3s",
    "CJ_ACTIONS_BREAKER_COOLDOWN": "5s",
    "CJ_ACTIONS_RATE_LIMIT_PER_MINUTE": "300",
}


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("stack")
    users = data / "mqtt-users.toml"
    password_hash = hash_password(MQTT_PASSWORD)
    users.write_text(
        "".join(
            render_user(name, password_hash, ["cornjacket/v1/events/+/%u"], [])
            for name in MQTT_DEVICES
        )
    )
    with running_stack(
        data,
        {
            "CJ_LOG_FORMAT": "json",
            "CJ_EVENTHANDLER_POLL_TIMEOUT": "100ms",
            "CJ_MQTT_USERS_FILE": str(users),
            **ACTIONS_ENV,
            # Spans of every process as JSON lines: tests/e2e/test_tracing.py reads them.
            "CJ_TRACING_EXPORTER": "file",
            "CJ_TRACING_DIR": str(data / "traces"),
        },
    ) as s:
        yield s


@pytest.fixture(scope="session")
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.edge_url, timeout=15) as client:
        yield client


@pytest.fixture(scope="session")
def channel(stack: Stack) -> Iterator[grpc.Channel]:
    ch = grpc.insecure_channel(f"127.0.0.1:{stack.settings.edge_port}")
    yield ch
    ch.close()
