"""The cost meter's CPU arithmetic (bench/costs.py): a process replaced during a scenario
(the soak's broker swap restarts the broker and its consumers) keeps the CPU time it had
reached at the meter's last reading instead of vanishing from the sum."""

from __future__ import annotations

from bench.costs import cpu_delta, merge_latest


def test_a_process_gone_by_the_end_keeps_the_time_it_had_reached() -> None:
    before = {"relay": {(10, 1.0): 5.0}}
    latest: dict[str, dict[tuple[int, float], float]] = {}
    merge_latest(latest, before)
    merge_latest(latest, {"relay": {(10, 1.0): 65.0}})  # a reading while it ran
    # Restarted: pid 10 is gone, pid 11 (new create time) took its place.
    merge_latest(latest, {"relay": {(11, 70.0): 2.0}})
    merge_latest(latest, {"relay": {(11, 70.0): 12.0}})
    assert cpu_delta(before, latest) == {"relay": 60.0 + 12.0}
    # Read only at both ends (the old arithmetic), the replaced process's minute is lost.
    assert cpu_delta(before, {"relay": {(11, 70.0): 12.0}}) == {"relay": 12.0}


def test_a_reused_pid_is_a_new_process_and_times_never_go_back() -> None:
    latest: dict[str, dict[tuple[int, float], float]] = {}
    merge_latest(latest, {"tsdb": {(7, 1.0): 3.0, (8, 1.0): 1.0}})
    merge_latest(latest, {"tsdb": {(7, 1.0): 2.0, (7, 9.0): 0.5}})  # an older reading; pid reused
    assert latest["tsdb"] == {(7, 1.0): 3.0, (8, 1.0): 1.0, (7, 9.0): 0.5}
    assert cpu_delta({"tsdb": {(7, 1.0): 1.0, (8, 1.0): 1.0}}, latest) == {"tsdb": 2.5}
