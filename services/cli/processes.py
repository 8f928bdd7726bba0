"""Child processes of the local stack: start with logs to a file, stop with a deadline."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from services.core.errors import CornjacketError


class StartError(CornjacketError):
    """A part of the stack could not be started; the message says which and why."""


def launch_prefix(user: str | None) -> list[str]:
    """Run children through util-linux's setpriv rather than a preexec_fn or Popen(user=).

    Either of those makes Python fork() instead of vfork(); fork() runs gRPC's at-fork
    handlers, which restart its poller in the child, where the poller can die on a closed
    epoll fd before exec (seen: a service aborting at start-up with "epoll_wait error: Bad
    file descriptor" when its parent held gRPC channels). setpriv also gives best-effort
    parent-death SIGTERM, so a supervisor killed outright leaves no orphans holding ports.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        if user is not None:
            raise StartError("setpriv (util-linux) is needed to run PostgreSQL as another user")
        return []
    cmd = [setpriv, "--pdeathsig", "TERM"]
    if user is not None:
        cmd += ["--reuid", user, "--regid", user, "--init-groups"]
    return [*cmd, "--"]


def port_free(host: str, port: int) -> bool:
    """True if a server could listen there (connections in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# Below Linux's default ephemeral range (32768-60999): a port picked there could be taken as
# the local port of some outgoing connection before our server binds it.
_PICK_RANGE = (20000, 32000)
_picked: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, outside the ephemeral range, not handed out before by
    this process (so several stacks and tests side by side do not collide)."""
    rng = random.Random()
    for _ in range(1000):
        port = rng.randint(*_PICK_RANGE)
        if port not in _picked and port_free(host, port):
            _picked.add(port)
            return port
    raise StartError(f"no free port found in {_PICK_RANGE[0]}-{_PICK_RANGE[1]}")


class Child:
    """One supervised process. Its stdout and stderr go to ``log_path``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        stop_signal: int = signal.SIGTERM,
        user: str | None = None,
        cwd: Path | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.stop_signal = stop_signal
        self.user = user
        self.cwd = cwd
        self.pass_fds = pass_fds
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process with umask 077: what it creates is its owner's only; so is its
        log (0600, never widened: an existing log keeps its mode)."""
        self.log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        log = open_private(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [*launch_prefix(self.user), *self.argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                pass_fds=self.pass_fds,
                umask=0o077,
            )
        except OSError as e:
            raise StartError(f"cannot start {self.name} ({self.argv[0]}): {e}") from e
        finally:
            log.close()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def ask_to_stop(self) -> None:
        """Send the stop signal without waiting (to stop several children at once)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(self.stop_signal)

    def stop(self, deadline: float = 10.0) -> int | None:
        """Ask politely, then kill after ``deadline`` seconds; return the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.ask_to_stop()
            try:
                self.proc.wait(timeout=deadline)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def open_private(path: Path, mode: str = "ab") -> IO[bytes]:
    """Open (creating it 0600 if missing) a file for binary appending or writing."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    return os.fdopen(os.open(path, flags, 0o600), mode)


def wait_until(predicate: object, timeout: float, *, what: str, child: Child | None = None) -> None:
    """Poll ``predicate()`` until true; fail early if ``child`` exits meanwhile."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():  # type: ignore[operator]
            return
        if child is not None and not child.alive():
            raise StartError(
                f"{child.name} exited with code {child.exit_code()} while {what}; "
                f"last lines of {child.log_path}:\n{child.tail()}"
            )
        time.sleep(0.1)
    raise StartError(f"timed out after {timeout:.0f}s {what}")


def env_with(extra: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env
