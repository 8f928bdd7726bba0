"""The quality measures of make bench-ai (issue 18)."""

from __future__ import annotations

import random

from bench.ai_quality import AFTER, KINDS, Segment, Stream, evaluate, make_stream


def test_detections_false_alarms_and_delay_are_counted_as_documented() -> None:
    s = Stream("d", "level_shift", [0.0] * 100, [0.0] * 100, [Segment("level_shift", 50, 60)])
    alarms = [False] * 100
    alarms[10] = True  # a false alarm
    alarms[53] = alarms[55] = True  # detected with delay 3
    alarms[60 + AFTER - 1] = True  # just after the anomaly: neither
    t = evaluate(s, alarms, warmup=5)
    assert (t.detected, t.missed, t.false_alarms, t.delays) == (1, 0, 1, [3])
    assert t.normal == 100 - 5 - 10 - AFTER
    assert t.precision == 0.5 and t.recall == 1.0


def test_every_kind_injects_anomalies_after_the_warmup() -> None:
    for kind in KINDS:
        s = make_stream("d", kind, random.Random(1))
        assert s.segments and all(seg.start >= 2 * 288 for seg in s.segments)


def test_the_service_model_meets_the_quality_goals_on_unseen_streams() -> None:
    """Issue 18's goals (overall F1 >= 0.8, <= 1 false alarm per 10,000 normal readings) on
    streams of a seed the model was tuned on neither (tuning: 18, 19; make bench-ai: 2026).
    Level shifts and broken daily cycles were the weak kinds (F1 0.48 and 0.36)."""
    from bench.ai_quality import DAY, run, streams
    from services.inference.detector import SeasonalRobust

    result = run(SeasonalRobust, streams(6, seed=7), threshold=0.5, warmup=2 * DAY)
    overall = result["overall"]
    assert overall.f1 >= 0.8, {k: round(t.f1, 3) for k, t in result.items()}
    assert overall.false_per_10k <= 1.0, {k: round(t.false_per_10k, 1) for k, t in result.items()}
    for kind in ("level_shift", "seasonality_break"):
        assert result[kind].f1 >= 0.8, (kind, result[kind].f1)
