"""The benchmark's closing note on what edge authentication costs (bench/report.py)."""

from __future__ import annotations

import pytest

from bench.__main__ import main
from bench.report import AUTH_OFF, AUTH_ON, auth_cost_note
from bench.results import BenchResult, ScenarioResult


def _scenario(name: str, per_s: float) -> ScenarioResult:
    return ScenarioResult(
        name=name,
        kind="http",
        target_rate=None,
        duration_s=10,
        events=int(per_s * 10),
        accepted_per_s=per_s,
        errors={},
        accept_latency_ms={"p50": 1.0, "p99": 2.0},
        e2e_latency_ms={},
        ticks=[],
        ceiling=None,
        ratio=None,
        sustained=None,
    )


def _result(*scenarios: ScenarioResult) -> BenchResult:
    return BenchResult(
        started_at="t", machine={}, config={}, ceilings=[], scenarios=list(scenarios)
    )


def test_both_figures_the_ratio_and_the_cost() -> None:
    note = auth_cost_note(_result(_scenario(AUTH_ON, 1900), _scenario(AUTH_OFF, 2000)))
    assert note is not None
    assert "with authentication 1,900" in note and "without 2,000" in note
    assert "ratio 0.950" in note and "costs 5.0% of HTTP throughput, within the 10% goal" in note


def test_a_cost_past_the_goal_says_so() -> None:
    note = auth_cost_note(_result(_scenario(AUTH_ON, 1500), _scenario(AUTH_OFF, 2000)))
    assert note is not None and "25.0%" in note and "ABOVE the 10% goal" in note


@pytest.mark.parametrize("names", [(), (AUTH_ON,), (AUTH_OFF,), ("grpc-unary-max", AUTH_ON)])
def test_no_note_unless_both_ran(names: tuple[str, ...]) -> None:
    assert auth_cost_note(_result(*(_scenario(n, 100) for n in names))) is None


def test_faster_with_auth_is_called_noise() -> None:
    note = auth_cost_note(_result(_scenario(AUTH_ON, 379), _scenario(AUTH_OFF, 163)))
    assert note is not None and "ratio 2.325" in note and "noise" in note and "goal" not in note


def test_nothing_accepted_without_auth_gives_no_ratio() -> None:
    note = auth_cost_note(_result(_scenario(AUTH_ON, 100), _scenario(AUTH_OFF, 0)))
    assert note is not None and "no ratio" in note


def test_the_scenario_is_listed_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert AUTH_OFF in capsys.readouterr().out
