"""Where the services' CPU goes under load: py-spy samples each Python service mid-scenario.

The throughput table says which process is busy; this says which functions. py-spy reads the
interpreter's stacks from outside (``--nonblocking``: the process is not paused), so the
service runs unmodified. Each service's samples are written as collapsed stacks (one line per
distinct stack with its count, the input of flame-graph tools) and summarised as the frames
with the most samples on top of the stack ("self" time).
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HotSpot:
    frame: str
    share: float  # of this service's samples, 0..1


def top_frames(collapsed: str, n: int = 8) -> list[HotSpot]:
    """The ``n`` innermost frames with the most samples in py-spy's raw (collapsed) output.

    A line is ``frame;frame;...;frame count``; idle threads show up as their wait call
    (e.g. ``select``), which is kept: a service mostly waiting is worth knowing too.
    """
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        counts[stack.rsplit(";", 1)[-1]] += int(count)
    if not total:
        return []
    return [HotSpot(frame, c / total) for frame, c in counts.most_common(n)]


class Profiler:
    """Records ``seconds`` of samples from each pid, starting ``delay`` seconds from now."""

    def __init__(self, pids: dict[str, int], out_dir: Path, *, delay: float, seconds: float):
        self._pids = pids
        self._out = out_dir
        self._delay = delay
        self._seconds = seconds
        self._thread = threading.Thread(target=self._run, name="profiler", daemon=True)
        self._errors: dict[str, str] = {}

    @staticmethod
    def binary() -> str | None:
        """py-spy on PATH, or beside this interpreter (a venv run without activating it)."""
        beside = Path(sys.executable).parent / "py-spy"
        return shutil.which("py-spy") or (str(beside) if beside.exists() else None)

    @classmethod
    def available(cls) -> bool:
        return cls.binary() is not None

    def start(self) -> None:
        self._out.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def _run(self) -> None:
        threading.Event().wait(self._delay)
        procs = {
            name: subprocess.Popen(
                [
                    self.binary() or "py-spy",
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(int(self._seconds)),
                    "--rate",
                    "100",
                    "--nonblocking",
                    "--format",
                    "raw",
                    "--output",
                    str(self._out / f"{name}.collapsed.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name, pid in self._pids.items()
        }
        for name, proc in procs.items():
            _, err = proc.communicate(timeout=self._seconds + 60)
            if proc.returncode != 0:
                lines = (err or "").strip().splitlines()
                self._errors[name] = lines[-1] if lines else "failed"

    def finish(self, n: int = 8) -> dict[str, list[HotSpot] | str]:
        """Waits for the recordings; per service its hot spots, or why there are none."""
        self._thread.join(timeout=self._delay + self._seconds + 90)
        result: dict[str, list[HotSpot] | str] = {}
        for name in self._pids:
            path = self._out / f"{name}.collapsed.txt"
            if name in self._errors:
                result[name] = f"py-spy failed: {self._errors[name]}"
            elif not path.exists():
                result[name] = "no samples"
            else:
                result[name] = top_frames(path.read_text(), n)
        return result


def format_hot_spots(scenario: str, spots: dict[str, list[HotSpot] | str]) -> str:
    lines = [f"Hot spots during {scenario} (share of each service's samples, innermost frame)"]
    for name, found in spots.items():
        if isinstance(found, str):
            lines.append(f"  {name}: {found}")
            continue
        lines.append(f"  {name}:")
        lines.extend(f"    {s.share * 100:5.1f} %  {s.frame}" for s in found)
    return "\n".join(lines)
