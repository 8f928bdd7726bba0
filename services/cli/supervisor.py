"""Watch the local stack: report every part that dies, restart it, give up on crash loops, and
swap the in-memory broker for an empty one before what it retains grows without bound."""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable

from services.cli.processes import Child, StartError
from services.cli.stack import Stack

MAX_RESTARTS = 5
WINDOW = 120.0
BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)
BROKER_CHECK_EVERY = 5.0


class Supervisor:
    def __init__(
        self,
        stack: Stack,
        *,
        clock: Callable[[], float] = time.monotonic,
        say: Callable[[str], None] | None = None,
        requests: Callable[[], list[str]] = list,
        broker_max_rss_mb: int = 0,
    ) -> None:
        self._stack = stack
        self._clock = clock
        self._requests = requests
        # Parts stopped on purpose (PostgreSQL shut down cleanly): left down until asked.
        self._held: set[str] = set()
        self._say = say or (lambda m: print(f"cornjacket: {m}", file=sys.stderr, flush=True))
        self._deaths: dict[str, deque[float]] = {}
        self._due: dict[str, float] = {}
        self._broker_max_rss_mb = broker_max_rss_mb
        self._broker_checked = clock()

    def run(self, halt: threading.Event, interval: float = 0.5) -> bool:
        """Tick until ``halt`` is set (True) or the stack should stop (False): the loop of
        `cornjacket up`, and of harnesses that run it in a thread."""
        while not halt.is_set():
            if not self.tick():
                return False
            halt.wait(interval)
        return True

    def tick(self) -> bool:
        """Check children once; return False when the stack should stop (crash loop)."""
        now = self._clock()
        for action in self._requests():
            if action == "start-postgres":
                self._start_held("postgres", now)
            elif action == "swap-broker":
                self._swap_broker("as requested")
        for child in self._stack.dead():
            if child.name in self._held:
                continue
            if child.name not in self._due:
                if not self._record_death(child, now):
                    return False
            elif now >= self._due[child.name]:
                self._try_restart(child, now)
        self._check_broker(now)
        return True

    def _check_broker(self, now: float) -> None:
        if not self._broker_max_rss_mb or now - self._broker_checked < BROKER_CHECK_EVERY:
            return
        self._broker_checked = now
        rss = self._stack.broker_rss_mb()
        if rss is None or rss <= self._broker_max_rss_mb:
            return
        self._swap_broker(f"it holds {rss:.0f} MB (CJ_BROKER_MAX_RSS_MB={self._broker_max_rss_mb})")
        self._broker_checked = self._clock()

    def _swap_broker(self, why: str) -> None:
        try:
            self._stack.rotate_broker(why=why)
        except StartError as e:
            # A part that did not come back is dead now: the next ticks restart it.
            self._say(f"swapping the broker failed: {e}")

    def _start_held(self, name: str, now: float) -> None:
        for child in self._stack.dead():
            if child.name == name:
                self._held.discard(name)
                self._say(f"starting {name} as requested")
                self._try_restart(child, now, requested=True)
                return
        self._say(f"{name} is already running")

    def _record_death(self, child: Child, now: float) -> bool:
        if child.name == "postgres" and child.exit_code() == 0:
            # A clean shutdown (e.g. `cornjacket postgres stop`) is an operator's choice.
            self._held.add(child.name)
            self._say(
                "PostgreSQL was shut down cleanly; it stays down until `cornjacket postgres "
                "start`. Meanwhile ingest answers 503 and /health reports unhealthy."
            )
            return True
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

    def _try_restart(self, child: Child, now: float, *, requested: bool = False) -> None:
        try:
            self._stack.restart(child)
        except StartError as e:
            self._say(f"could not restart {child.name}: {e}")
            # Counts as another death: backs off further, and ends a crash loop.
            self._due.pop(child.name, None)
            return
        self._due.pop(child.name, None)
        self._say(f"{child.name} {'started' if requested else 'restarted'}")
