"""Fuzz tests: hypothesis with a fixed seed (derandomize) and bounded example counts, so a
run is repeatable in CI and the whole folder takes about two minutes; the terminal summary
counts attacks tried, passed, crashes and 5xx per target.

HYPOTHESIS_PROFILE=fuzz-long runs ten times the examples with a random seed, for a deeper
search by hand."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from services.cli.auth import key_store
from services.cli.stack import Stack
from tests.fuzz.tally import Tally
from tests.support import running_stack

settings.register_profile(
    "fuzz",
    derandomize=True,  # a fixed seed: the same inputs on every run
    deadline=None,  # a busy 2-core machine; speed is not what is tested
    database=None,  # no example database left behind
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile(
    "fuzz-long", settings.get_profile("fuzz"), derandomize=False, max_examples=2000
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fuzz"))

TALLY = pytest.StashKey[Tally]()


@pytest.fixture(scope="session")
def tally(pytestconfig: pytest.Config) -> Tally:
    return pytestconfig.stash.setdefault(TALLY, Tally())


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    t = config.stash.get(TALLY, None)
    if t is None or not t.tried:
        return
    head = ("target", "attacks tried", "passed", "crashes", "5xx")
    table = [head, *((r[0], *map(str, r[1:])) for r in t.rows())]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    terminalreporter.section("fuzzing: attacks tried, passed, crashes, 5xx")
    for r in table:
        terminalreporter.write_line("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole stack with authentication on, as `cornjacket up` runs it; two signing keys
    as after a rotation."""
    data = tmp_path_factory.mktemp("fuzz-stack")
    key_store(data).rotate(kid="cj-0-previous")
    key_store(data).rotate()
    with running_stack(data, {"CJ_LOG_FORMAT": "json"}) as s:
        yield s
