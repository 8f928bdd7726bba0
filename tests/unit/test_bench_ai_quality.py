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
