"""Session fixtures: one real PostgreSQL 18 and one real Kafka-protocol broker for the run.

Each test module gets its own database (and so its own schemas), so tests never touch a
developer's data or each other's tables.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from services.cli.embedded import EmbeddedBroker, EmbeddedPostgres
from services.cli.processes import free_port
from tests.support import unique


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cj")


@pytest.fixture(scope="session")
def postgres(run_dir: Path) -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(run_dir / "pgdata", free_port(), run_dir / "logs" / "postgres.log")
    pg.start()
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def broker(run_dir: Path) -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker(free_port(), run_dir / "logs" / "broker.log")
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def database(postgres: EmbeddedPostgres) -> str:
    """A fresh database for this module; returns its URL."""
    name = unique("t").replace("-", "_")
    with psycopg.connect(postgres.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres.url_for(name)


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    d = tmp_path / "logs"
    d.mkdir()
    return d


def pytest_configure(config: pytest.Config) -> None:
    # Services started by tests log as text: easier to read in a failure report.
    os.environ.setdefault("CJ_LOG_FORMAT", "text")
