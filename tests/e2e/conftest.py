"""The whole stack, started the way `cornjacket up` starts it, on free ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from services.cli.processes import free_port
from services.cli.stack import Stack
from services.config.settings import StackSettings


def stack_settings(data_dir: Path) -> StackSettings:
    return StackSettings(
        data_dir=data_dir,
        edge_port=free_port(),
        envoy_admin_port=free_port(),
        postgres_port=free_port(),
        broker_port=free_port(),
        ingestion_port=free_port(),
        query_port=free_port(),
        eventhandler_port=free_port(),
        relay_port=free_port(),
        envoy_concurrency=1,
        start_timeout=90,
        broker_log="warn",
    )


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
