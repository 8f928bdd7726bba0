"""The whole stack, started the way `cornjacket up` starts it, on free ports."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest

from services.cli.auth import edge_channel, key_store
from services.cli.stack import Stack
from services.mqtt.access import hash_password, render_user
from tests.support import bearer, running_stack

# Devices of the end-to-end stack's MQTT users file (anonymous access is turned on
# explicitly, so other tests can publish without credentials).
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
    # The tests' local webhook receivers: intended internal targets, allow-listed explicitly
    # (private targets are refused by default; tests/e2e/test_egress_attacks.py).
    "CJ_ACTIONS_ALLOWED_TARGETS": "127.0.0.1",
}


# Rows of tests/e2e/test_auth_attacks.py's table: attack, expected, got, pass.
ATTACKS = pytest.StashKey[list[tuple[str, str, str, bool]]]()


@pytest.fixture(scope="session")
def attack_log(pytestconfig: pytest.Config) -> list[tuple[str, str, str, bool]]:
    return pytestconfig.stash.setdefault(ATTACKS, [])


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    rows = config.stash.get(ATTACKS, [])
    if not rows:
        return
    head = ("attack", "expected", "got", "pass")
    table = [head, *((a, e, g, "yes" if ok else "NO") for a, e, g, ok in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    terminalreporter.section("edge authentication: attacks through Envoy")
    for r in table:
        terminalreporter.write_line("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("stack")
    # Two signing keys, as after a rotation: the older one no longer signs, but tokens it
    # signed must keep working (tests/e2e/test_auth_attacks.py).
    key_store(data).rotate(kid="cj-0-previous")
    key_store(data).rotate()
    users = data / "mqtt-users.toml"
    password_hash = hash_password(MQTT_PASSWORD)
    users.write_text(
        "".join(
            render_user(name, password_hash, ["cornjacket/v1/events/+/%u"], [], f"{name}.")
            for name in MQTT_DEVICES
        )
    )
    with running_stack(
        data,
        {
            "CJ_LOG_FORMAT": "json",
            "CJ_EVENTHANDLER_POLL_TIMEOUT": "100ms",
            "CJ_MQTT_USERS_FILE": str(users),
            "CJ_MQTT_ALLOW_ANONYMOUS": "true",
            **ACTIONS_ENV,
            # issue 18: a short warm-up, so tests/e2e/test_inference.py's device needs 30
            # readings before its spike (other tests send a handful per device).
            "CJ_INFERENCE_WARMUP": "30",
            # issue 19: few watcher slots, so tests/e2e/test_watch.py can fill them.
            "CJ_WATCH_MAX_WATCHERS": "4",
            # Spans of every process as JSON lines: tests/e2e/test_tracing.py reads them.
            "CJ_TRACING_EXPORTER": "file",
            "CJ_TRACING_DIR": str(data / "traces"),
        },
    ) as s:
        yield s


@pytest.fixture(scope="session")
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.edge_url, timeout=15, headers=bearer(stack)) as client:
        yield client


@pytest.fixture(scope="session")
def channel(stack: Stack) -> Iterator[grpc.Channel]:
    ch = edge_channel(f"127.0.0.1:{stack.settings.edge_port}", stack.admin_token)
    yield ch
    ch.close()
