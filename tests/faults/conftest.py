"""Fault-injection suite: one stack of its own, steady load, one fault at a time."""

from __future__ import annotations

from typing import Any

import pytest

# Rows of the summary table, filled by the tests and printed at the end of the run.
REPORT: list[dict[str, Any]] = []
# Rows of tests/faults/test_replicas.py's table: one per service whose replica was killed.
REPLICA_REPORT: list[dict[str, Any]] = []


def _table(terminalreporter: Any, title: str, head: tuple[str, ...], rows: list[Any]) -> None:
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    terminalreporter.section(title)
    terminalreporter.line("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    terminalreporter.line("  ".join("-" * w for w in widths))
    for row in rows:
        terminalreporter.line("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    for r in REPORT:
        if r.get("note"):
            terminalreporter.line(f"  * {r['fault']}: {r['note']}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REPLICA_REPORT:
        _table(
            terminalreporter,
            "replicas: one of each SIGKILLed in turn",
            (
                "service",
                "replicas",
                "killed at",
                "takeover",
                "in flight",
                "events",
                "lost",
                "doubled",
                "reordered",
            ),
            [
                (
                    r["service"],
                    str(r["replicas"]),
                    f"{r['killed_at']:.1f}s",
                    f"{r['takeover_s']:.1f}s",
                    str(r["in_flight"]),
                    f"{r['events']:,}",
                    str(r["lost"]),
                    str(r["doubled"]),
                    str(r["reordered"]),
                )
                for r in REPLICA_REPORT
            ],
        )
        for r in REPLICA_REPORT:
            if r.get("note"):
                terminalreporter.line(f"  * {r['note']}")
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
    for r in REPORT:
        if r.get("note"):
            terminalreporter.line(f"  * {r['fault']}: {r['note']}")


@pytest.fixture(scope="session")
def report() -> list[dict[str, Any]]:
    return REPORT


@pytest.fixture(scope="session")
def replica_report() -> list[dict[str, Any]]:
    return REPLICA_REPORT
