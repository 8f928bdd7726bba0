"""A tiny file-based control channel between `cornjacket postgres|broker ...` and a running `up`.

The supervisor owns every child process; other commands ask it to act by dropping a request
file into ``<data_dir>/control/`` rather than starting processes it would not know about.
"""

from __future__ import annotations

import os
from pathlib import Path

ACTIONS = ("start-postgres", "swap-broker")


def _dir(data_dir: Path) -> Path:
    return data_dir / "control"


def pid_file(data_dir: Path) -> Path:
    return data_dir / "cornjacket-up.pid"


def mark_running(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    pid_file(data_dir).write_text(str(os.getpid()))
    _dir(data_dir).mkdir(exist_ok=True)
    for stale in _dir(data_dir).iterdir():
        stale.unlink(missing_ok=True)


def mark_stopped(data_dir: Path) -> None:
    pid_file(data_dir).unlink(missing_ok=True)


def supervisor_pid(data_dir: Path) -> int | None:
    """The pid of the `cornjacket up` running on this data dir, if one is alive."""
    try:
        pid = int(pid_file(data_dir).read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def request(data_dir: Path, action: str) -> None:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    _dir(data_dir).mkdir(parents=True, exist_ok=True)
    (_dir(data_dir) / action).touch()


def take_requests(data_dir: Path) -> list[str]:
    folder = _dir(data_dir)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        if path.name in ACTIONS:
            path.unlink(missing_ok=True)
            found.append(path.name)
    return found
