"""The cost meter's CPU arithmetic (bench/costs.py): a process replaced during a scenario
(the soak's broker swap restarts the broker and its consumers) keeps the CPU time it had
reached at the meter's last reading instead of vanishing from the sum."""

from __future__ import annotations

import threading

from bench.costs import CostMeter, cpu_delta, merge_latest


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


def test_a_process_seen_under_two_stages_is_counted_once() -> None:
    # The soak's broker swap: the new broker (pid 20) is first seen in the benchmark's own
    # tree (the load stage: the stack's root map still named the old broker), then, once the
    # map names it, as the broker. Its CPU belongs to one stage, never to both.
    before = {"load": {(1, 1.0): 10.0}, "broker": {(5, 1.0): 3.0}}
    latest: dict[str, dict[tuple[int, float], float]] = {}
    merge_latest(latest, before)
    merge_latest(latest, {"load": {(1, 1.0): 11.0, (20, 50.0): 4.0}, "broker": {}})
    merge_latest(latest, {"load": {(1, 1.0): 12.0}, "broker": {(20, 50.0): 9.0}})
    spent = cpu_delta(before, latest)
    assert spent == {"load": 2.0, "broker": 9.0}
    assert sum(spent.values()) == 2.0 + 9.0  # pid 20 counted once


def test_a_process_moving_stage_counts_from_its_starting_reading() -> None:
    # Seen under load at the start (10 s already spent), under the broker at the end.
    before = {"load": {(20, 50.0): 10.0}, "broker": {}}
    latest: dict[str, dict[tuple[int, float], float]] = {}
    merge_latest(latest, before)
    merge_latest(latest, {"load": {}, "broker": {(20, 50.0): 13.0}})
    assert sum(cpu_delta(before, latest).values()) == 3.0


def test_a_closed_meter_leaves_no_thread_running() -> None:
    # A scenario whose load raised never reaches stop(): close() ends the follower.
    meter = CostMeter({}, None, None)
    meter.start()
    meter.close()
    meter.close()
    assert not [t for t in threading.enumerate() if t.name == "cost-meter" and t.is_alive()]
