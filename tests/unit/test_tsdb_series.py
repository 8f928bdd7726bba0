"""Time-series rules without I/O: points of an event, bucketing, rollup arithmetic, the read
plan, limits, and which partitions retention drops."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import pytest
import uuid_utils

from services.core.errors import InvalidInput
from services.core.events import Event
from services.tsdb.ports import PartitionGone
from services.tsdb.series import (
    AGGREGATES,
    Aggregate,
    Point,
    SeriesQuery,
    ceil_time,
    days_ahead,
    expired,
    floor_time,
    parse_aggregates,
    parse_bucket,
    plan,
    points_of,
    prefix_end,
    to_drop,
    validate,
)
from services.tsdb.series_reader import columns_for
from services.tsdb.service import SeriesWriter

pytestmark = pytest.mark.unit

T = datetime(2026, 5, 8, 12, 34, 56, 789000, tzinfo=UTC)


def test_numeric_fields_become_points_and_nothing_else() -> None:
    e = Event(
        "e1",
        "sensor.reading",
        "dev-1",
        T,
        T,
        {
            "temp": 21.5,
            "n": 3,
            "ok": True,
            "unit": "C",
            "nan": float("nan"),
            "bad name": 1.0,
            "nested": {"x": 1},
            "big": 10**400,
        },
    )
    assert sorted((p.metric, p.value) for p in points_of(e)) == [("n", 3.0), ("temp", 21.5)]
    assert all(p.time == T and p.device == "dev-1" and p.event_id == "e1" for p in points_of(e))


def test_buckets_count_from_the_epoch() -> None:
    assert floor_time(T, timedelta(minutes=1)) == datetime(2026, 5, 8, 12, 34, tzinfo=UTC)
    assert floor_time(T, timedelta(hours=1)) == datetime(2026, 5, 8, 12, tzinfo=UTC)
    assert floor_time(T, timedelta(days=1)) == datetime(2026, 5, 8, tzinfo=UTC)
    assert ceil_time(T, timedelta(minutes=1)) == datetime(2026, 5, 8, 12, 35, tzinfo=UTC)
    aligned = datetime(2026, 5, 8, 12, tzinfo=UTC)
    assert ceil_time(aligned, timedelta(hours=1)) == aligned


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1), ("10s", 10), ("1m", 60), ("15m", 900), ("1h", 3600), ("1d", 86400)],
)
def test_bucket_sizes(text: str, seconds: int) -> None:
    assert parse_bucket(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["0s", "2d", "25h", "1w", "", "1.5m", "-1s", "m"])
def test_bucket_outside_the_rule_is_refused_with_the_rule(text: str) -> None:
    with pytest.raises(InvalidInput, match="bucket"):
        parse_bucket(text)


def test_aggregates_asked_for_in_either_list_form_none_meaning_all() -> None:
    assert parse_aggregates([]) == frozenset(AGGREGATES)
    assert parse_aggregates(["avg"]) == {"avg"}
    assert parse_aggregates(["avg, MAX", "min", ""]) == {"avg", "max", "min"}
    with pytest.raises(InvalidInput, match="'median' unknown: choose from count, sum, min"):
        parse_aggregates(["avg,median"])


def test_each_aggregate_reads_only_the_columns_it_needs() -> None:
    # The average is one column of its own (the database divides): a chart's read moves
    # two arrays, the index and the averages.
    assert columns_for(frozenset({"avg"})) == ("a",)
    assert columns_for(frozenset({"max", "first"})) == ("hi", "f")
    assert columns_for(frozenset(AGGREGATES)) == ("n", "s", "a", "lo", "hi", "f", "l")


def test_rollup_arithmetic_combines_disjoint_parts_in_time_order() -> None:
    rng = random.Random(3)
    pts = sorted(
        (T + timedelta(seconds=rng.randrange(3600)), str(i), rng.uniform(-9, 9)) for i in range(200)
    )
    whole = Aggregate.of(pts)
    parts = [Aggregate.of(pts[i : i + 17]) for i in range(0, len(pts), 17)]
    combined = parts[0]
    for p in parts[1:]:
        combined = combined.then(p)
    assert (combined.count, combined.min, combined.max, combined.first, combined.last) == (
        whole.count,
        whole.min,
        whole.max,
        whole.first,
        whole.last,
    )
    assert combined.sum == pytest.approx(whole.sum)
    assert whole.avg == pytest.approx(sum(v for *_, v in pts) / 200)


def test_first_and_last_break_time_ties_by_event_id() -> None:
    agg = Aggregate.of([(T, "b", 2.0), (T, "a", 1.0), (T, "c", 3.0)])
    assert (agg.first, agg.last) == (1.0, 3.0)


def q(start: datetime, end: datetime, bucket: str) -> SeriesQuery:
    return SeriesQuery("d", "temp", start, end, parse_bucket(bucket))


def test_plan_uses_the_coarsest_rollup_dividing_the_bucket_for_the_aligned_middle() -> None:
    start, end = T - timedelta(days=1), T
    p = plan(q(start, end, "1h"))
    assert p.rollup == timedelta(hours=1)
    assert p.rollup_from == datetime(2026, 5, 7, 13, tzinfo=UTC)
    assert p.rollup_to == datetime(2026, 5, 8, 12, tzinfo=UTC)
    assert plan(q(start, end, "5m")).rollup == timedelta(minutes=1)
    assert plan(q(start, end, "90s")).rollup is None  # not whole minutes
    assert plan(q(start, end, "30s")).rollup is None
    # Shorter than one aligned hour: minutes instead.
    short = plan(q(T, T + timedelta(minutes=50), "1h"))
    assert short.rollup == timedelta(minutes=1)


def test_limits_name_the_numbers() -> None:
    validate(q(T - timedelta(days=7), T, "1m"), 10_081)  # 7 x 1440 (+1: epoch-aligned)
    with pytest.raises(
        InvalidInput,
        match=r"range of 604800s in 60s buckets spans up to 10081 buckets; at most 10000",
    ):
        validate(q(T - timedelta(days=7), T, "1m"), 10_000)
    with pytest.raises(InvalidInput, match="must be before"):
        validate(q(T, T, "1m"), 10_000)
    with pytest.raises(InvalidInput, match="metric"):
        validate(SeriesQuery("d", "a b", T, T + timedelta(1), timedelta(minutes=1)), 10_000)


def test_retention_drops_days_wholly_older_than_the_retention() -> None:
    now = datetime(2026, 5, 8, 3, 0, tzinfo=UTC)
    week = timedelta(days=7)
    assert expired(date(2026, 4, 30), now, week)  # ended 05-01 00:00 <= 05-01 03:00
    assert not expired(date(2026, 5, 1), now, week)  # holds 05-01 03:00..24:00, still kept
    names = [
        "points_p20260502",
        "points_p20260429",
        "points_p20260430",
        "points",
        "other_p20260101",
        "points_p20261399",
    ]
    assert to_drop(names, "points", now, week) == ["points_p20260429", "points_p20260430"]


def test_partitions_ahead_start_today() -> None:
    assert days_ahead(T, 2) == [date(2026, 5, 8), date(2026, 5, 9), date(2026, 5, 10)]


def test_settings_fail_fast_naming_the_variable() -> None:
    from services.config.settings import Env, StackSettings, TsdbSettings
    from services.core.errors import ConfigError

    s = TsdbSettings.from_env(Env({}))
    assert (s.port, s.metrics_port, s.consumer_group, s.topics) == (
        50057,
        9107,
        "tsdb-writer",
        ("sensor-events",),
    )
    assert (s.retention, s.rollup_retention) == (7 * 86400.0, 90 * 86400.0)
    with pytest.raises(ConfigError, match="CJ_TSDB_RETENTION='soon'"):
        TsdbSettings.from_env(Env({"CJ_TSDB_RETENTION": "soon"}))
    with pytest.raises(ConfigError, match="CJ_TSDB_ROLLUP_RETENTION='2d' is shorter"):
        TsdbSettings.from_env(Env({"CJ_TSDB_ROLLUP_RETENTION": "2d"}))
    with pytest.raises(ConfigError, match="CJ_TSDB_MAX_POINTS=5 is out of range"):
        TsdbSettings.from_env(Env({"CJ_TSDB_MAX_POINTS": "5"}))
    with pytest.raises(ConfigError, match="CJ_FEATURE_TSDB='maybe'"):
        StackSettings.from_env(Env({"CJ_FEATURE_TSDB": "maybe"}))
    assert StackSettings.from_env(Env({})).feature_tsdb
    assert not StackSettings.from_env(Env({"CJ_FEATURE_TSDB": "false"})).feature_tsdb


def test_without_the_tsdb_upstream_its_routes_are_left_out() -> None:
    from services.cli.envoy_config import render

    base = {"ingestion": ("127.0.0.1", 1), "query": ("127.0.0.1", 2)}
    assert "/cornjacket.v1.SeriesService/" not in render(edge_port=1, admin_port=2, upstreams=base)
    with_tsdb = render(edge_port=1, admin_port=2, upstreams={**base, "tsdb": ("127.0.0.1", 3)})
    assert '"/cornjacket.v1.SeriesService/"' in with_tsdb and "cluster: tsdb" in with_tsdb


def test_the_feature_flag_decides_whether_up_runs_tsdb(tmp_path: object) -> None:
    import dataclasses
    from pathlib import Path

    from services.cli.stack import Stack, settings_on_free_ports

    settings = settings_on_free_ports(Path(str(tmp_path)))
    assert "tsdb" in Stack(settings).service_names
    off = dataclasses.replace(settings, feature_tsdb=False)
    assert "tsdb" not in Stack(off).service_names
    assert "cluster: tsdb" not in Stack(off).envoy_config(None, insecure=True)


def test_the_feature_flag_decides_whether_up_runs_inference(tmp_path: object) -> None:
    import dataclasses
    from pathlib import Path

    from services.cli.stack import Stack, settings_on_free_ports

    settings = settings_on_free_ports(Path(str(tmp_path)))
    assert "inference" in Stack(settings).service_names
    off = dataclasses.replace(settings, feature_inference=False)
    assert "inference" not in Stack(off).service_names
    assert "cluster: inference" not in Stack(off).envoy_config(None, insecure=True)


# --- issue 17 review ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bucket", "rule"),
    [("90s", "whole minutes"), ("3599s", "whole minutes"), ("61m", "whole hours")],
)
def test_a_bucket_no_rollup_serves_is_refused_with_the_rule(bucket: str, rule: str) -> None:
    """A bucket that is not whole rollup rows planned raw over the whole range (3599s over 7
    days: every raw point); max_points bounds buckets, not rows."""
    with pytest.raises(InvalidInput, match=rule):
        validate(q(T - timedelta(days=7), T, bucket), 10_000)


def test_raw_reads_have_a_range_budget() -> None:
    validate(q(T - timedelta(hours=24), T, "10s"), 10_000)
    with pytest.raises(InvalidInput, match=r"under 1m read raw points: at most 86400s"):
        validate(q(T - timedelta(hours=25), T, "30s"), 10_000)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("0001-01-01T00:30:00+01:00", "0001-01-02T00:00:00+00:00"),
        ("9999-12-31T22:30:00+00:00", "9999-12-31T23:59:00+00:00"),
        ("1969-12-31T00:00:00+00:00", "1970-01-01T01:00:00+00:00"),
    ],
)
def test_edge_times_are_refused_not_crashed(start: str, end: str) -> None:
    with pytest.raises(InvalidInput, match="1970"):
        validate(q(datetime.fromisoformat(start), datetime.fromisoformat(end), "1h"), 10_000)


def test_only_readings_become_points_and_big_finite_values_are_kept() -> None:
    def ev(kind: str, payload: dict[str, object]) -> Event:
        return Event("e1", kind, "dev-1", T, T, payload)

    assert points_of(ev("sensor.calibrated", {"offset": 1.0})) == []
    assert [p.value for p in points_of(ev("sensor.reading", {"a": 1e308}))] == [1e308]
    assert [p.value for p in points_of(ev("sensor.reading", {"a": 10**308}))] == [1e308]
    assert points_of(ev("sensor.reading", {"temp\n": 1.0})) == []
    with pytest.raises(InvalidInput, match="metric"):
        validate(SeriesQuery("d", "temp\n", T, T + timedelta(1), timedelta(minutes=1)), 10_000)


def test_the_writer_takes_only_the_configured_event_types() -> None:
    from services.config.settings import Env, TsdbSettings

    base = {"CJ_TSDB_DATABASE_URL": "postgresql://u@h/db"}
    assert TsdbSettings.from_env(Env(base)).event_types == ("sensor.reading",)
    more = TsdbSettings.from_env(Env({**base, "CJ_TSDB_EVENT_TYPES": "sensor.reading,x.y"}))
    assert more.event_types == ("sensor.reading", "x.y")


class _Gone:
    """A PointWriter whose first ``gone`` writes find a partition gone; it refuses 13."""

    def __init__(self, gone: int = 1) -> None:
        self.gone = gone
        self.calls = 0
        self.kept: set[tuple[str, str]] = set()

    def write(self, points: Sequence[Point]) -> int:
        self.calls += 1
        if self.calls <= self.gone:
            raise PartitionGone("no partition of relation found for row")
        if any(p.value == 13.0 for p in points):
            raise InvalidInput("refused")
        new = {(p.event_id, p.metric) for p in points} - self.kept
        self.kept |= new
        return len(new)


def test_a_partition_gone_mid_write_skips_expired_points_and_retries_once() -> None:
    now = datetime(2026, 5, 8, 12, tzinfo=UTC)
    later = now + timedelta(days=1)
    old = datetime(2026, 3, 19, 12, tzinfo=UTC)  # expired at `later` for 50 days, not at now
    writer = _Gone()
    core = SeriesWriter(writer, timedelta(days=50).total_seconds(), clock=lambda: later)
    events = [
        Event(str(uuid_utils.uuid7()), "sensor.reading", "d", t, t, {"v": v})
        for t, v in ((old, 1.0), (now, 2.0), (now, 13.0))
    ]
    out = core.handle(events, now)
    assert (out.too_old, out.points, out.written, out.refused) == (1, 2, 1, 1)
    with pytest.raises(PartitionGone):  # a second one in a row goes to the loop
        SeriesWriter(_Gone(gone=2), 86400.0 * 50).handle(events[1:2], now)


@pytest.mark.parametrize(
    ("prefix", "end"),
    [
        ("dev-", "dev."),
        ("a", "b"),
        ("a\U0010ffff", "b"),
        ("\ud7ff", "\ue000"),
        ("\U0010ffff\U0010ffff", None),
        ("", None),
    ],
)
def test_a_prefix_ends_at_the_least_string_after_all_its_extensions(
    prefix: str, end: str | None
) -> None:
    assert prefix_end(prefix) == end
    if end is not None:
        for s in (prefix, prefix + "\x00", prefix + "\U0010ffff" * 3, prefix + "zz"):
            assert prefix <= s < end
            assert s.encode() < end.encode()  # PostgreSQL's "C" order: the UTF-8 bytes
        assert not end.startswith(prefix)
