"""The logic that decides bench/ai_speed.py's results: pairing spikes with their anomalies,
the keeps-up verdict, and the latency scenario's premise (a warm model flags its spikes and
not the normal readings around them)."""

from __future__ import annotations

import random

import pytest

from bench.ai_speed import HOPS, STEP, Signal, hops_of, keeps_up, pair
from bench.results import ScenarioResult
from services.inference.detector import SeasonalRobust


def test_a_spike_pairs_with_its_first_anomaly_and_the_rest_is_counted() -> None:
    spikes = {"a": 100.0, "b": 101.0, "c": 102.0}
    stored = [("a", 100.08), ("b", 101.2), ("b", 101.5), ("x", 101.0)]
    p = pair(spikes, stored)
    assert sorted(round(v) for v in p.latencies_ms) == [80, 200]
    assert p.missing == ["c"]
    assert p.unexpected == 1  # an anomaly of a reading that was not a spike
    assert p.duplicates == 1  # a second anomaly for b: its latency runs to the first


def test_an_anomaly_just_after_its_device_s_spike_is_counted_apart() -> None:
    """The quality benchmark counts an alarm in the AFTER (6) readings after an anomaly as
    neither a detection nor a false alarm; the latency scenario says how many it saw."""
    readings = {"s": ("d1", 10), "n1": ("d1", 12), "n2": ("d1", 17), "n3": ("d2", 11)}
    p = pair({"s": 1.0}, [("s", 1.1), ("n1", 1.2), ("n2", 1.3), ("n3", 1.4)], readings)
    assert p.after_spike == 1  # n1: d1's second reading after its spike
    assert p.unexpected == 2  # n2: seven readings after; n3: another device
    assert len(p.latencies_ms) == 1


def test_a_duplicate_stored_earlier_is_the_one_that_counts() -> None:
    p = pair({"a": 10.0}, [("a", 10.5), ("a", 10.1)])
    assert [round(v) for v in p.latencies_ms] == [100]
    assert p.duplicates == 1


def test_nothing_stored_means_every_spike_is_missing() -> None:
    p = pair({"a": 1.0, "b": 2.0}, [])
    assert p.latencies_ms == [] and sorted(p.missing) == ["a", "b"]


def scenario(
    *, rate: float = 1000, accepted: float = 990, sustained: bool | None = True, drain: float = 2
) -> ScenarioResult:
    return ScenarioResult(
        name="ai-throughput",
        kind="grpc-batch",
        target_rate=rate,
        duration_s=30,
        events=int(accepted * 30),
        accepted_per_s=accepted,
        errors={},
        accept_latency_ms={},
        e2e_latency_ms={},
        ticks=[],
        ceiling="grpc_noop_direct",
        ratio=accepted / rate,
        sustained=sustained,
        drain_s=drain,
    )


@pytest.mark.parametrize(
    ("kwargs", "ok", "why"),
    [
        ({}, True, "sustained"),
        ({"accepted": 900}, False, "under 95%"),  # the stack did not take the rate
        ({"sustained": False}, False, "kept growing"),
        ({"sustained": None}, False, "not measured"),
        ({"drain": 25}, False, "drained 25.0 s"),
    ],
)
def test_keeps_up_needs_the_rate_a_bounded_lag_and_a_drain(
    kwargs: dict[str, float], ok: bool, why: str
) -> None:
    got, reason = keeps_up(scenario(**kwargs), drain_limit_s=10)  # type: ignore[arg-type]
    assert got is ok
    assert why in reason


def test_a_warm_model_flags_the_spikes_of_the_latency_scenario_and_not_its_normal_readings() -> (
    None
):
    """The scenario's premise, with the service's model: 600 readings 5 minutes apart, then
    readings a few per second (as the paced phase sends them) with a spike among them."""
    rng = random.Random(20)
    flagged_spikes = 0
    false_alarms = 0
    for _ in range(20):
        sig = Signal.draw(rng)
        m = SeasonalRobust()
        t = 1_780_000_000.0
        for _ in range(600):
            m.learn(sig.normal(t, rng), t)
            t += STEP
        for k in range(200):
            t += 0.2
            x = sig.spike(t, rng) if k == 100 else sig.normal(t, rng)
            alarm = m.score(x, t).score >= 0.5
            if k == 100:
                flagged_spikes += alarm
            else:
                false_alarms += alarm
            m.learn(x, t)
    assert flagged_spikes == 20
    assert false_alarms == 0


def test_hops_split_a_spike_s_latency_and_add_up_to_it() -> None:
    spikes = {"a": 10.0, "b": 20.0}
    rows = [
        ("a", 10.05, 10.1, 10.3, 10.35),
        ("a", 10.05, 10.1, 10.3, 10.9),  # a second anomaly of a: its first counts
        ("z", 1.0, 2.0, 3.0, 4.0),  # not a spike
    ]
    hops = hops_of(spikes, rows)
    assert [round(hops[h][0]) for h in HOPS] == [50, 50, 200, 50]
    assert all(len(v) == 1 for v in hops.values())  # b has no anomaly yet
    assert round(sum(hops[h][0] for h in HOPS)) == round(
        pair(spikes, [("a", 10.35)]).latencies_ms[0]
    )
