"""The whole stack, started the way `cornjacket up` starts it, on free ports."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import httpx
import pytest

from services.cli.stack import Stack, settings_on_free_ports

stack_settings = settings_on_free_ports


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(
        stack_settings(tmp_path_factory.mktemp("stack")),
        extra_env={"CJ_LOG_FORMAT": "json", "CJ_EVENTHANDLER_POLL_TIMEOUT": "100ms"},
        say=lambda m: None,
    )
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="session")
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.edge_url, timeout=15) as client:
        yield client


@pytest.fixture(scope="session")
def channel(stack: Stack) -> Iterator[grpc.Channel]:
    ch = grpc.insecure_channel(f"127.0.0.1:{stack.settings.edge_port}")
    yield ch
    ch.close()
