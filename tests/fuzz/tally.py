"""Counts of what the fuzz tests tried, for the terminal summary: every generated input is
an attack; it passes when the property held, crashes when the code under test raised
something other than its own clear error, and a 5xx is a server error the edge returned."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


class Crash(AssertionError):
    """The code under test raised an exception that is not its documented error."""


@dataclass
class Tally:
    tried: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    crashes: Counter[str] = field(default_factory=Counter)
    server_errors: Counter[str] = field(default_factory=Counter)

    @contextmanager
    def attack(self, target: str) -> Iterator[None]:
        """One generated input against ``target``; an exception other than an assertion
        is a crash (hypothesis then shrinks it and the test fails)."""
        self.tried[target] += 1
        try:
            yield
        except Crash:
            self.crashes[target] += 1
            raise
        except AssertionError:
            self.failed[target] += 1
            raise
        except Exception:
            self.crashes[target] += 1
            raise

    def server_error(self, target: str) -> None:
        self.server_errors[target] += 1

    def rows(self) -> list[tuple[str, int, int, int, int]]:
        """(target, tried, passed, crashes, 5xx) per target, and a total row."""
        rows = []
        for target in sorted(self.tried):
            tried = self.tried[target]
            bad = self.failed[target] + self.crashes[target]
            rows.append(
                (target, tried, tried - bad, self.crashes[target], self.server_errors[target])
            )
        if rows:
            rows.append(
                (
                    "total",
                    sum(r[1] for r in rows),
                    sum(r[2] for r in rows),
                    sum(r[3] for r in rows),
                    sum(r[4] for r in rows),
                )
            )
        return rows
