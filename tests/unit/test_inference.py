"""The inference core: scoring, warm-up, late readings, checkpoints, anomalies (issue 18)."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from services.config.settings import Env, InferenceSettings
from services.core.errors import ConfigError, Unavailable
from services.core.events import Event
from services.inference.detector import RollingZ, SeasonalRobust, restore
from services.inference.service import (
    Anomaly,
    Checkpoint,
    Inference,
    Message,
    ModelRow,
    Rejected,
    numbers,
)

T0 = datetime(2026, 5, 1, tzinfo=UTC)


class MemoryStore:
    def __init__(self) -> None:
        self.models: dict[tuple[str, str], dict[str, object]] = {}
        self.rows: dict[tuple[str, str], ModelRow] = {}
        self.pos: dict[tuple[str, int], int] = {}
        self.scores: list[object] = []
        self.anomalies: dict[tuple[str, str], tuple[Anomaly, str | Rejected | None]] = {}
        self.dead: list[object] = []
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise Unavailable("database down")

    def applied(self, event_ids: Sequence[str]) -> set[str]:
        self._check()
        scored = {s.event_id for s in self.scores}  # type: ignore[attr-defined]
        return {e for e in event_ids if e in scored}

    def load(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], ModelRow]:
        self._check()
        out = {}
        for k in keys:
            if k in self.rows:
                r = self.rows[k]
                # Through JSON, as PostgreSQL keeps it.
                state = json.loads(json.dumps(self.models[k]))
                out[k] = ModelRow(
                    r.device,
                    r.metric,
                    restore(state),
                    r.late,
                    r.last_event_time,
                    r.last_event_id,
                    r.last_score,
                )
        return out

    def save(self, cp: Checkpoint) -> bool:
        self._check()
        for r in cp.models:
            self.models[(r.device, r.metric)] = r.model.state()
            self.rows[(r.device, r.metric)] = r
        self.scores.extend(cp.scores)
        for a in cp.anomalies:
            self.anomalies.setdefault((a.source_event_id, a.metric), (a, None))
        self.dead.extend(cp.dead)
        for p, o in cp.positions.items():
            self.pos[p] = max(self.pos.get(p, 0), o)
        return True

    def metrics(self, devices: Sequence[str]) -> dict[str, set[str]]:
        self._check()
        out: dict[str, set[str]] = {}
        for d, k in self.rows:
            if d in devices:
                out.setdefault(d, set()).add(k)
        return out

    def unsent(self, limit: int) -> list[Anomaly]:
        self._check()
        return [a for a, sent in self.anomalies.values() if sent is None][:limit]

    def anomaly_times(self, devices: Sequence[str], since: datetime) -> dict[str, list[datetime]]:
        out: dict[str, list[datetime]] = {}
        for a, _ in self.anomalies.values():
            if a.device in devices and a.event_time >= since:
                out.setdefault(a.device, []).append(a.event_time)
        return out

    def mark_sent(self, sent: Sequence[tuple[Anomaly, str | Rejected]]) -> None:
        for a, event_id in sent:
            self.anomalies[(a.source_event_id, a.metric)] = (a, event_id)


class MemorySink:
    def __init__(self) -> None:
        self.sent: list[Anomaly] = []
        self.down = False

    def send(self, anomalies: Sequence[Anomaly]) -> list[str | Rejected]:
        if self.down:
            raise Unavailable("ingestion down")
        self.sent.extend(anomalies)
        return [f"id-{len(self.sent) - len(anomalies) + i}" for i in range(len(anomalies))]


def reading(i: int, value: float | str, *, device: str = "d1", minutes: int | None = None) -> Event:
    t = T0 + timedelta(minutes=5 * i if minutes is None else minutes)
    return Event(
        f"00000000-0000-7000-8000-{i:012d}",
        "sensor.reading",
        device,
        t,
        t,
        {"temp": value, "unit": "C"},
    )


def msg(i: int, event: Event | None, *, raw: bytes = b"x") -> Message:
    return Message("sensor-events", 0, i, event, raw)


def normal(i: int, rng: random.Random) -> float:
    return 20 + 5 * math.sin(2 * math.pi * i / 288) + rng.gauss(0, 0.5)


def service(store: MemoryStore, sink: MemorySink, warmup: int = 300) -> Inference:
    return Inference(store, sink, consumer="ai-inference", warmup=warmup, threshold=0.5)


def test_a_spike_after_warmup_is_an_anomaly_with_the_expected_range() -> None:
    store, sink = MemoryStore(), MemorySink()
    inf = service(store, sink)
    rng = random.Random(1)
    inf.handle([msg(i, reading(i, normal(i, rng))) for i in range(600)])
    assert not sink.sent  # calm signal: no false alarm
    inf.handle([msg(600, reading(600, normal(600, rng) + 10))])
    [anomaly] = sink.sent
    p = anomaly.payload
    assert p["source_event_id"] == reading(600, 0).event_id
    assert p["device"] == "d1" and p["metric"] == "temp" and p["model"] == "seasonal-robust"
    assert 0.5 <= p["score"] <= 1.0 and p["threshold"] == 0.5
    assert p["expected"]["low"] < normal(600, random.Random(1)) < p["expected"]["high"] < p["value"]
    assert p["device_anomalies_24h"] == 1
    assert anomaly.idempotency_key.startswith(f"ai.anomaly:{p['source_event_id']}:")
    assert all(0.0 <= s.score <= 1.0 for s in store.scores)  # type: ignore[attr-defined]


def test_no_anomaly_before_warmup() -> None:
    store, sink = MemoryStore(), MemorySink()
    inf = service(store, sink, warmup=50)
    inf.handle([msg(i, reading(i, 20.0 + (i % 3) * 0.1)) for i in range(40)])
    inf.handle([msg(40, reading(40, 1e6))])
    assert not sink.sent and store.scores[-1].score > 0.5  # type: ignore[attr-defined]


def test_a_late_reading_is_scored_not_learned_and_counted() -> None:
    store, sink = MemoryStore(), MemorySink()
    inf = service(store, sink)
    inf.handle([msg(i, reading(i, 20.0 + i % 2)) for i in range(10)])
    before = store.models[("d1", "temp")]
    inf.handle([msg(10, reading(99, 21.0, minutes=3))])  # older than the last learned
    assert store.models[("d1", "temp")]["n"] == before["n"] == 10
    assert store.rows[("d1", "temp")].late == 1 and inf.counters.late == 1
    assert not store.scores[-1].learned  # type: ignore[attr-defined]


def test_a_replaced_broker_restarting_offsets_at_zero_loses_nothing() -> None:
    store, sink = MemoryStore(), MemorySink()
    inf = service(store, sink)
    inf.handle([msg(i, reading(i, 20.0 + i % 2)) for i in range(10)])
    # A new in-memory broker: new readings arrive at offsets the old one already used.
    inf.handle([msg(i, reading(10 + i, 20.0 + i % 2)) for i in range(5)])
    assert store.models[("d1", "temp")]["n"] == 15


def test_redelivered_messages_are_not_learned_twice() -> None:
    store, sink = MemoryStore(), MemorySink()
    inf = service(store, sink)
    batch = [msg(i, reading(i, 20.0 + i % 2)) for i in range(10)]
    inf.handle(batch)
    inf.handle(batch)  # the bus offset commit was lost: the same batch again
    assert store.models[("d1", "temp")]["n"] == 10
    assert inf.counters.already_applied == 10


@pytest.mark.parametrize("factory", [SeasonalRobust, RollingZ])
def test_checkpoint_then_restore_gives_the_same_scores(factory: type) -> None:
    rng = random.Random(3)
    original = factory()
    xs = [normal(i, rng) for i in range(900)]
    for i, x in enumerate(xs[:700]):
        original.learn(x, i * 300.0)
    copy = restore(json.loads(json.dumps(original.state())))
    for i, x in enumerate(xs[700:], start=700):
        assert copy.score(x, i * 300.0) == original.score(x, i * 300.0)
        original.learn(x, i * 300.0)
        copy.learn(x, i * 300.0)


@pytest.mark.parametrize("factory", [SeasonalRobust, RollingZ])
def test_a_copy_is_the_state_round_trip_and_independent(factory: type) -> None:
    """The service copies a model per reading (model.copy(), not restore(state())): the
    copy has the same state, and learning on it leaves the original as it was."""
    rng = random.Random(4)
    original = factory()
    for i in range(400):
        original.learn(normal(i, rng), i * 300.0)
    before = json.dumps(original.state())
    copy = original.copy()
    assert json.dumps(copy.state()) == before
    for i in range(400, 420):
        copy.learn(normal(i, rng) + 50, i * 300.0)
    assert json.dumps(original.state()) == before
    assert json.dumps(copy.state()) != before


@pytest.mark.parametrize("field", ["level", "trend", "scale", "repeat_rate", "season", "recent"])
@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_finite_says_what_the_state_check_said(field: str, bad: float) -> None:
    m = SeasonalRobust()
    for i in range(30):
        m.learn(20.0 + i % 3, i * 300.0)
    assert m.finite()
    if isinstance(getattr(m, field), list):
        getattr(m, field)[-1] = bad
    else:
        setattr(m, field, bad)
    assert not m.finite()
    assert SeasonalRobust().finite()  # last is NaN (null in JSON) before the first reading
    z = RollingZ()
    z.learn(1.0, 0.0)
    assert z.finite()
    z.learn(bad, 1.0)
    assert not z.finite()


def test_an_anomaly_is_kept_until_ingestion_takes_it() -> None:
    store, sink = MemoryStore(), MemorySink()
    inf = service(store, sink, warmup=20)
    inf.handle([msg(i, reading(i, 20.0 + (i % 5) * 0.1)) for i in range(30)])
    sink.down = True
    with pytest.raises(Unavailable):
        inf.handle([msg(30, reading(30, 500.0))])
    assert store.pos[("sensor-events", 0)] == 31  # the checkpoint holds the decision
    sink.down = False
    inf.handle([msg(30, reading(30, 500.0))])  # the loop retries the same batch
    assert [a.source_event_id for a in sink.sent] == [reading(30, 0).event_id]
    assert store.models[("d1", "temp")]["n"] == 31  # learned once


def test_poison_and_unusable_readings() -> None:
    store, sink = MemoryStore(), MemorySink()
    inf = service(store, sink)
    inf.handle([msg(0, None, raw=b"\xff"), msg(1, reading(1, "hot")), msg(2, reading(2, 20.0))])
    assert len(store.dead) == 1 and inf.counters.skipped == 1 and inf.counters.learned == 1
    assert store.pos[("sensor-events", 0)] == 3


def test_a_model_error_is_a_poison_event_and_the_model_is_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, sink = MemoryStore(), MemorySink()
    inf = service(store, sink)
    inf.handle([msg(i, reading(i, 20.0 + i % 2)) for i in range(5)])

    def broken(self: SeasonalRobust, x: float, t: float) -> None:
        raise ArithmeticError("boom")

    monkeypatch.setattr(SeasonalRobust, "learn", broken)
    inf.handle([msg(5, reading(5, 20.0))])
    [dead] = store.dead
    assert "model failed: ArithmeticError: boom" in dead.error  # type: ignore[attr-defined]
    assert store.models[("d1", "temp")]["n"] == 5


def test_numbers_takes_finite_numbers_only() -> None:
    assert numbers({"a": 1, "b": 2.5, "c": True, "d": "7", "e": math.nan, "f": math.inf}) == {
        "a": 1.0,
        "b": 2.5,
    }


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CJ_INFERENCE_THRESHOLD", "high"),
        ("CJ_INFERENCE_THRESHOLD", "1.5"),
        ("CJ_INFERENCE_WARMUP", "0"),
        ("CJ_FEATURE_INFERENCE", "maybe"),
        ("CJ_INFERENCE_MODEL_CACHE", "-1"),
        ("CJ_INFERENCE_MODEL_CACHE", "lots"),
    ],
)
def test_bad_settings_fail_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        InferenceSettings.from_env(Env({name: value}))


def test_default_settings() -> None:
    s = InferenceSettings.from_env(Env({}))
    assert s.model_cache == 20_000
    assert (s.enabled, s.port, s.metrics_port, s.consumer_group) == (
        True,
        50058,
        9108,
        "ai-inference",
    )
    # A polled batch loads and saves each model once: 5,000 readings from 1,000 devices cost
    # about a fifth of the model writes that batches of 500 did (docs/inference.md, speed).
    assert s.batch_size == 5000


def test_each_anomaly_counts_its_device_anomalies_of_the_last_24_hours() -> None:
    store, sink = MemoryStore(), MemorySink()
    inf = service(store, sink, warmup=20)
    calm = [msg(i, reading(i, 20.0 + (i % 5) * 0.1)) for i in range(30)]
    inf.handle(calm)
    inf.handle([msg(30, reading(30, 500.0)), msg(31, reading(31, 20.1))])
    inf.handle([msg(32, reading(32, 600.0))])  # 10 minutes later
    inf.handle([msg(33, reading(33, 20.2)), msg(34, reading(34, 700.0, minutes=5 * 34 + 1500))])
    counts = [a.payload["device_anomalies_24h"] for a in sink.sent]
    assert counts == [1, 2, 1]  # the third is 25 h after the others


# -- review of issue 18 (branch aifix) ------------------------------------------------------


def test_extreme_readings_are_skipped_and_counted_and_the_stream_goes_on() -> None:
    """1e308 then -1e308 made the scale inf (stored as null), and the next batch's restore
    raised outside the per-event try: the consumer loop exited (issue 18 review, 1)."""
    store, sink = MemoryStore(), MemorySink()
    inf = service(store, sink, warmup=20)
    inf.handle([msg(0, reading(0, 1e308)), msg(1, reading(1, -1e308))])
    assert inf.counters.skipped == 2 and inf.counters.learned == 0
    inf.handle([msg(2, reading(2, 20.0)), msg(3, reading(3, 1e151)), msg(4, reading(4, 21.0))])
    assert inf.counters.learned == 2 and inf.counters.skipped == 3
    assert all(math.isfinite(v) for v in store.models[("d1", "temp")]["season"])  # type: ignore[attr-defined]
    assert math.isfinite(store.models[("d1", "temp")]["scale"])  # type: ignore[arg-type]


def test_numbers_skips_huge_and_overflowing_values() -> None:
    assert numbers({"a": 10**400, "b": -1e200, "c": 1e150, "d": 3}) == {"c": 1e150, "d": 3.0}


def test_a_non_finite_state_after_learning_is_poison_and_the_model_is_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, sink = MemoryStore(), MemorySink()
    inf = service(store, sink)
    inf.handle([msg(i, reading(i, 20.0 + i % 2)) for i in range(5)])
    real = SeasonalRobust.learn

    def overflowing(self: SeasonalRobust, x: float, t: float) -> None:
        real(self, x, t)
        self.scale = math.inf

    monkeypatch.setattr(SeasonalRobust, "learn", overflowing)
    inf.handle([msg(5, reading(5, 20.0))])
    [dead] = store.dead
    assert "not finite" in dead.error  # type: ignore[attr-defined]
    assert store.models[("d1", "temp")]["n"] == 5
    assert math.isfinite(store.models[("d1", "temp")]["scale"])  # type: ignore[arg-type]


def test_a_reading_from_the_future_is_scored_not_learned_and_does_not_freeze_the_model() -> None:
    """Ingestion allows 24 h of clock skew: a reading 23 h ahead became last_event_time and
    every later reading was 'late' for a day (review, 3)."""
    store, sink = MemoryStore(), MemorySink()
    inf = service(store, sink, warmup=20)
    ahead = reading(99, 20.0)
    ahead = Event(
        ahead.event_id,
        ahead.event_type,
        ahead.aggregate_id,
        T0 + timedelta(hours=23),
        T0,
        ahead.payload,
    )
    inf.handle([msg(i, reading(i, 20.0)) for i in range(5)] + [msg(5, ahead)])
    inf.handle([msg(6 + i, reading(6 + i, 21.0)) for i in range(10)])
    assert (inf.counters.learned, inf.counters.future, inf.counters.late) == (15, 1, 0)
    assert inf.counters.scored == 16


def test_the_idempotency_key_is_short_and_clean_for_any_metric_name() -> None:
    """ai.anomaly:<uuid>:<metric> passed ingestion's 256 limit for long names (review, 4)."""
    a = Anomaly("00000000-0000-7000-8000-000000000001", "m" * 64, "d1", T0, {})
    b = Anomaly("00000000-0000-7000-8000-000000000001", "m" * 63, "d1", T0, {})
    assert len(a.idempotency_key) <= 100 and a.idempotency_key != b.idempotency_key
    assert a.idempotency_key.isprintable()


def test_metric_names_are_validated_and_the_rest_counted() -> None:
    assert numbers({"m" * 65: 1.0, "bad\nname": 2.0, "": 3.0, "ok.temp:1-x": 4.0}) == {
        "ok.temp:1-x": 4.0
    }
    store, sink = MemoryStore(), MemorySink()
    inf = service(store, sink)
    payload = {"temp": 20.0, "m" * 250: 21.0, "x\x01": 3.0, "huge": 1e200}
    inf.handle([msg(0, Event(reading(0, 0).event_id, "sensor.reading", "d1", T0, T0, payload))])
    assert inf.counters.learned == 1 and inf.counters.unusable == 3


class RejectingSink(MemorySink):
    def send(self, anomalies: Sequence[Anomaly]) -> list[str | Rejected]:
        return [Rejected("payload too large") for _ in anomalies]


def test_a_rejected_anomaly_is_kept_as_rejected_not_marked_sent() -> None:
    store, sink = MemoryStore(), RejectingSink()
    inf = service(store, sink, warmup=20)
    inf.handle([msg(i, reading(i, 20.0 + (i % 5) * 0.1)) for i in range(30)])
    inf.handle([msg(30, reading(30, 500.0))])
    [(_, outcome)] = store.anomalies.values()
    assert outcome == Rejected("payload too large")
    assert inf.counters.rejected == 1 and inf.counters.sent == 0
    assert store.unsent(10) == []


def test_metrics_per_device_are_capped_and_the_rest_counted() -> None:
    """An unbounded number of metric names per device grew models without end (review, 5)."""
    store, sink = MemoryStore(), MemorySink()
    inf = Inference(store, sink, consumer="ai", warmup=20, threshold=0.5, max_metrics=3)
    payload = {f"m{k}": 1.0 for k in range(5)}
    inf.handle([msg(0, Event(reading(0, 0).event_id, "sensor.reading", "d1", T0, T0, payload))])
    assert sorted(store.models) == [("d1", "m0"), ("d1", "m1"), ("d1", "m2")]
    assert inf.counters.unusable == 2
    more = {"m4": 2.0, "m1": 2.0, "m9": 2.0}
    inf.handle([msg(1, Event(reading(1, 0).event_id, "sensor.reading", "d1", T0, T0, more))])
    assert len(store.models) == 3 and inf.counters.unusable == 4 and inf.counters.learned == 4
    other = Event(reading(2, 0).event_id, "sensor.reading", "d2", T0, T0, {"m9": 1.0})
    inf.handle([msg(2, other)])  # the cap is per device
    assert ("d2", "m9") in store.models


def test_max_metrics_setting() -> None:
    assert InferenceSettings.from_env(Env({})).max_metrics == 32
    with pytest.raises(ConfigError, match="CJ_INFERENCE_MAX_METRICS"):
        InferenceSettings.from_env(Env({"CJ_INFERENCE_MAX_METRICS": "0"}))


def test_copies_of_an_event_within_one_batch_are_applied_once() -> None:
    """A redelivered copy in the same batch was scored twice and counted late (review, 6)."""
    store, sink = MemoryStore(), MemorySink()
    inf = service(store, sink, warmup=20)
    inf.handle([msg(i, reading(i, 20.0 + (i % 5) * 0.1)) for i in range(30)])
    spike = reading(30, 500.0)
    cp = inf.apply([msg(30, spike), msg(31, reading(31, 20.1)), msg(32, spike)])
    assert [s.event_id for s in cp.scores].count(spike.event_id) == 1
    assert len(cp.anomalies) == 1 and cp.anomalies[0].payload["device_anomalies_24h"] == 1
    assert (inf.counters.late, inf.counters.already_applied) == (0, 1)
    assert store.pos[("sensor-events", 0)] == 33


def test_anomalies_go_out_from_the_checkpoint_and_leftovers_are_read_back() -> None:
    """A batch's anomalies are sent right after its checkpoint without reading the store
    back; stored unsent ones (a crashed replica's) are read back at the start and every
    BACKLOG_EVERY seconds."""
    from services.inference.service import BACKLOG_EVERY

    store, sink = MemoryStore(), MemorySink()
    now = [0.0]
    inf = Inference(
        store, sink, consumer="ai-inference", warmup=20, threshold=0.5, clock=lambda: now[0]
    )
    reads = 0
    real_unsent = store.unsent

    def counted(limit: int) -> list[Anomaly]:
        nonlocal reads
        reads += 1
        return real_unsent(limit)

    store.unsent = counted  # type: ignore[method-assign]
    inf.handle([msg(i, reading(i, 20.0 + (i % 5) * 0.1)) for i in range(30)])
    assert reads == 1  # the start
    inf.handle([msg(30, reading(30, 500.0))])
    assert [a.source_event_id for a in sink.sent] == [reading(30, 0).event_id]
    assert reads == 1 and real_unsent(10) == []  # sent and recorded, not read back
    left = Anomaly(reading(99, 0).event_id, "temp", "d2", T0, {"score": 0.9})
    store.anomalies[(left.source_event_id, "temp")] = (left, None)  # another replica's
    inf.handle([msg(31, reading(31, 20.0))])
    assert left not in sink.sent
    now[0] += BACKLOG_EVERY
    inf.handle([msg(32, reading(32, 20.1))])
    assert sink.sent[-1] == left and reads == 2


class CappedSink(MemorySink):
    """Ingestion takes at most ``cap`` events per IngestEvents call (services/ingestion:
    MAX_BATCH); a larger call is refused whole (INVALID_ARGUMENT: Unavailable to the sink)."""

    def __init__(self, cap: int) -> None:
        super().__init__()
        self.cap = cap
        self.calls: list[int] = []

    def send(self, anomalies: Sequence[Anomaly]) -> list[str | Rejected]:
        self.calls.append(len(anomalies))
        if len(anomalies) > self.cap:
            raise Unavailable(f"a batch holds at most {self.cap} events")
        return super().send(anomalies)


def test_a_batch_with_more_anomalies_than_one_send_takes_goes_out_in_pieces() -> None:
    """The anomalies of one checkpoint sent straight after it are sent ``send_batch`` at a
    time, as the stored ones are: one call with all of them is refused by ingestion (at most
    500 events a call) and fails the batch (the loop blocks and retries it)."""
    store = MemoryStore()
    sink = CappedSink(cap=3)
    inf = Inference(store, sink, consumer="ai-inference", warmup=20, threshold=0.5, send_batch=3)
    devices = [f"d{n}" for n in range(5)]

    def one(i: int, n: int, value: float) -> Message:
        t = T0 + timedelta(minutes=5 * i)
        e = Event(
            f"00000000-0000-7000-8001-{i * 10 + n:012d}",
            "sensor.reading",
            devices[n],
            t,
            t,
            {"temp": value},
        )
        return msg(i * 10 + n, e)

    inf.handle([one(i, n, 20.0 + (i % 5) * 0.1) for i in range(30) for n in range(5)])
    spikes = [one(30, n, 500.0) for n in range(5)]
    inf.handle(spikes)  # raised Unavailable: one call with 5 anomalies
    assert sorted(a.device for a in sink.sent) == devices
    assert max(sink.calls) <= 3


def test_a_backlog_read_that_fails_part_way_is_read_again_at_the_next_batch() -> None:
    """The stored unsent anomalies are read back a page at a time after a send failed; when
    reading the second page fails (the database went away), the next batch reads the backlog
    again instead of leaving what is left for BACKLOG_EVERY seconds."""
    store, sink = MemoryStore(), MemorySink()
    now = [0.0]
    inf = Inference(
        store,
        sink,
        consumer="ai-inference",
        warmup=20,
        threshold=0.5,
        send_batch=2,
        clock=lambda: now[0],
    )
    inf.handle([msg(i, reading(i, 20.0 + (i % 5) * 0.1)) for i in range(30)])  # backlog read
    left = [Anomaly(reading(90 + n, 0).event_id, "temp", "d2", T0, {"n": n}) for n in range(2)]
    for a in left:  # a crashed replica's
        store.anomalies[(a.source_event_id, "temp")] = (a, None)
    sink.down = True
    with pytest.raises(Unavailable):
        inf.handle([msg(30, reading(30, 500.0))])  # its anomaly stored, not sent
    sink.down = False
    real_unsent, calls = store.unsent, [0]

    def failing_second(limit: int) -> list[Anomaly]:
        calls[0] += 1
        if calls[0] == 2:
            raise Unavailable("database down")
        return real_unsent(limit)

    store.unsent = failing_second  # type: ignore[method-assign]
    with pytest.raises(Unavailable):
        inf.handle([msg(30, reading(30, 500.0))])  # the loop retries the batch
    assert len(sink.sent) == 2
    inf.handle([msg(30, reading(30, 500.0))])  # and again, well within BACKLOG_EVERY
    assert len(sink.sent) == 3 and real_unsent(10) == []
