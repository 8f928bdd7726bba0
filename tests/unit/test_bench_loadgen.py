"""The load generator's readings look like a sensor's to the inference service: with every
feature on, a reading the detector scores anomalous becomes an ai.anomaly event that runs
through the whole pipeline. A counter (the old value: the event's number) is scored
anomalous most of the time after ~1,100 readings per device (a long soak), a flood no
user's load has."""

from __future__ import annotations

from bench.loadgen import reading
from services.inference.detector import SeasonalRobust

WARMUP = 576  # CJ_INFERENCE_WARMUP's default
T0 = 1_764_633_600.0  # 2026-12-02T00:00:00Z


def flagged(values: list[float], step_s: float = 2.5) -> int:
    model = SeasonalRobust()
    hits = 0
    for i, x in enumerate(values):
        t = T0 + i * step_s
        if i >= WARMUP and model.score(x, t).score >= 0.5:
            hits += 1
        model.learn(x, t)
    return hits


def test_a_devices_readings_are_bounded_noise_the_detector_does_not_flag() -> None:
    # bench/loadgen.py spreads event n over 1,000 devices: one device sees n = c + 1000 j.
    for c in (3, 517, 999):
        values = [reading(c + 1000 * j) for j in range(WARMUP + 400)]
        assert all(20.0 <= v < 30.0 for v in values)
        assert len(set(values)) > 100  # noise, not a constant
        assert flagged(values) == 0


def test_the_old_counter_reading_was_flagged_in_a_long_run() -> None:
    # A counter's model holds for ~1,100 readings per device, then most are flagged.
    counter = [float(3 + 1000 * j) for j in range(2_000)]
    assert flagged(counter) > 500
    assert flagged([reading(3 + 1000 * j) for j in range(2_000)]) == 0
