"""Fault-injection suite: one stack of its own, steady load, one fault at a time."""

from __future__ import annotations

from typing import Any

import pytest

# Rows of the summary table, filled by the tests and printed at the end of the run.
REPORT: list[dict[str, Any]] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not REPORT:
        return
    head = ("fault", "acknowledged", "lost", "stored unacked", "stored twice", "recovered in")
    rows = [
        (
            r["fault"],
            f"{r['acked']:,}",
            str(r["lost"]),
            str(r["unacked_stored"]),
            str(r["duplicated"]),
            f"{r['recovery_s']:.1f}s",
        )
        for r in REPORT
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    terminalreporter.section("fault injection")
    terminalreporter.line("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    terminalreporter.line("  ".join("-" * w for w in widths))
    for row in rows:
        terminalreporter.line("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


@pytest.fixture(scope="session")
def report() -> list[dict[str, Any]]:
    return REPORT
