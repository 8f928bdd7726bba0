"""Watch the local stack: report every part that dies, restart it, give up on crash loops."""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable

from services.cli.processes import Child, StartError
from services.cli.stack import Stack

MAX_RESTARTS = 5
WINDOW = 120.0
BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)


class Supervisor:
    def __init__(
        self,
        stack: Stack,
        *,
        clock: Callable[[], float] = time.monotonic,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self._stack = stack
        self._clock = clock
        self._say = say or (lambda m: print(f"cornjacket: {m}", file=sys.stderr, flush=True))
        self._deaths: dict[str, deque[float]] = {}
        self._due: dict[str, float] = {}

    def tick(self) -> bool:
        """Check children once; return False when the stack should stop (crash loop)."""
        now = self._clock()
        for child in self._stack.dead():
            if child.name not in self._due:
                if not self._record_death(child, now):
                    return False
            elif now >= self._due[child.name]:
                self._try_restart(child, now)
        return True

    def _record_death(self, child: Child, now: float) -> bool:
        deaths = self._deaths.setdefault(child.name, deque())
        deaths.append(now)
        while deaths and now - deaths[0] > WINDOW:
            deaths.popleft()
        if len(deaths) > MAX_RESTARTS:
            self._say(
                f"{child.name} died {len(deaths)} times in {WINDOW:.0f}s; stopping the stack. "
                f"Last lines of {child.log_path}:\n{child.tail()}"
            )
            return False
        delay = BACKOFF[min(len(deaths) - 1, len(BACKOFF) - 1)]
        self._say(
            f"{child.name} exited with code {child.exit_code()}; restarting it in {delay:.0f}s. "
            f"Last lines of {child.log_path}:\n{child.tail(10)}"
        )
        self._due[child.name] = now + delay
        return True

    def _try_restart(self, child: Child, now: float) -> None:
        try:
            self._stack.restart(child)
        except StartError as e:
            self._say(f"could not restart {child.name}: {e}")
            # Counts as another death: backs off further, and ends a crash loop.
            del self._due[child.name]
            return
        del self._due[child.name]
        self._say(f"{child.name} restarted")
