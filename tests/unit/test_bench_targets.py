"""Issue 20's targets as `make bench` judges them (bench/report.py): results built by hand,
judged PASS and FAIL at the boundaries; the soak's broker-swap exclusion and PostgreSQL's
shared-buffer allowance."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from bench import names
from bench.costs import Costs
from bench.report import (
    HTTP_MAX_RATIO,
    check_targets,
    pg_allowance_mb,
    soak_growth,
    summary_table,
)
from bench.results import (
    BenchResult,
    Ceiling,
    ProcSample,
    ScenarioResult,
    Tick,
    backlog_windows,
    percentiles,
    split_by_windows,
)
from bench.tsdb import series_path

C, U = 4_000.0, 5_000.0


def lat(p99: float) -> dict[str, float]:
    return {"p50": p99 / 2, "p95": p99, "p99": p99, "max": p99, "count": 100.0}


def scenario(name: str, kind: str, **kw: object) -> ScenarioResult:
    base = ScenarioResult(
        name=name,
        kind=kind,
        target_rate=None,
        duration_s=30,
        events=30_000,
        accepted_per_s=1_000,
        errors={},
        accept_latency_ms=lat(1),
        e2e_latency_ms=lat(10),
        ticks=[],
        ceiling=names.C,
        ratio=None,
        sustained=True,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def result(*scenarios: ScenarioResult, measured: bool = True) -> BenchResult:
    return BenchResult(
        started_at="t",
        machine={"cpus": "2"},
        config={},
        ceilings=[
            Ceiling(names.C, C, "req/s", "", measured=measured),
            Ceiling(names.U, U, "req/s", "", measured=measured),
        ],
        scenarios=list(scenarios),
    )


def verdict(r: BenchResult, number: str) -> tuple[str, str]:
    check = next(c for c in check_targets(r) if c.target.startswith(number))
    return check.status, check.measured


def batch(**kw: object) -> ScenarioResult:
    args: dict[str, object] = {
        "target_rate": U,
        "accepted_per_s": U,
        "ceiling": names.U,
        "ratio": 1.0,
        "e2e_latency_ms": lat(250),
        "group_lag_after": {"event-handler": 0, "action-orchestrator": 0, "ai-inference": 0},
    }
    return scenario(names.BATCH, "grpc-batch", **{**args, **kw})


def test_batch_at_u_passes_at_the_boundary_and_names_its_ceiling() -> None:
    status, measured = verdict(result(batch()), "1.")
    assert status == "PASS", measured
    assert "vs U = 5,000 req/s" in measured and "send->projection p99 250 ms" in measured


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"e2e_latency_ms": lat(251)}, "send->projection p99 > 250 ms"),
        ({"sustained": False}, "NOT sustained"),
        ({"accepted_per_s": 0.94 * U}, "rate not reached"),
        (
            {"group_lag_after": {"event-handler": 0, "action-orchestrator": 1}},
            "groups behind after the drain: action-orchestrator 1",
        ),
        ({"group_lag_after": {}}, "no per-group lag measured"),
    ],
)
def test_batch_at_u_fails_past_each_boundary(change: dict[str, object], why: str) -> None:
    status, measured = verdict(result(batch(**change)), "1.")
    assert status == "FAIL" and why in measured


def test_http_closed_loop_is_judged_as_a_ratio_of_c() -> None:
    at = scenario(names.HTTP_MAX, "http", ratio=HTTP_MAX_RATIO, accepted_per_s=0.3 * C)
    assert verdict(result(at), "2.")[0] == "PASS"
    below = replace(at, ratio=0.299)
    status, measured = verdict(result(below), "2.")
    assert status == "FAIL" and "below 0.30 x C" in measured and "vs C = 4,000" in measured


def test_a_default_ceiling_is_named_as_not_measured() -> None:
    at = scenario(names.HTTP_MAX, "http", ratio=0.5)
    assert "NOT MEASURED, default" in verdict(result(at, measured=False), "2.")[1]


@pytest.mark.parametrize(
    ("number", "name", "kind", "accept", "e2e"),
    [
        ("3.", names.HTTP_FIXED, "http", 10.0, 50.0),
        ("4a.", names.QUERY, "query-http", 5.0, 0.0),
        ("4b.", names.SERIES, "series-http", 20.0, 0.0),
        ("5.", names.MQTT_FIXED, "mqtt", 20.0, 60.0),
    ],
)
def test_fixed_rate_targets_pass_at_their_limits_and_fail_just_past(
    number: str, name: str, kind: str, accept: float, e2e: float
) -> None:
    rate = 0.12 * C
    s = scenario(
        name,
        kind,
        target_rate=rate,
        accepted_per_s=rate,
        accept_latency_ms=lat(accept),
        e2e_latency_ms=lat(e2e) if e2e else {},
    )
    assert verdict(result(s), number)[0] == "PASS"
    assert verdict(result(replace(s, accept_latency_ms=lat(accept + 0.1))), number)[0] == "FAIL"
    if e2e:
        assert verdict(result(replace(s, e2e_latency_ms=lat(e2e + 0.1))), number)[0] == "FAIL"
    status, measured = verdict(result(replace(s, errors={"http 503": 1})), number)
    assert status == "FAIL" and "errors" in measured
    assert verdict(result(replace(s, accepted_per_s=0.9 * rate)), number)[0] == "FAIL"


def test_a_target_whose_scenario_did_not_run_is_not_applicable() -> None:
    assert verdict(result(), "3.") == ("n.a.", f"{names.HTTP_FIXED} not run")


def test_a_trip_overlapping_a_swap_window_is_inside_it() -> None:
    windows = [(100.0, 110.0)]
    samples = [
        (90.0, 5.0),  # done long before
        (99.99, 20.0),  # sent before, projected during: waited for the swap
        (105.0, 3_000.0),  # sent during
        (110.5, 5.0),  # after
    ]
    outside, inside = split_by_windows(samples, windows)
    assert outside == [5.0, 5.0] and inside == [20.0, 3_000.0]


def ticks(memory: dict[str, list[float]]) -> list[Tick]:
    n = len(next(iter(memory.values())))
    return [
        Tick(
            t=float(i),
            accepted=1,
            errors=0,
            accept_p50_ms=1,
            accept_p99_ms=1,
            outbox_depth=0,
            consumer_lag=0,
            procs={k: ProcSample(0, rss_mb=v[i], pss_mb=v[i]) for k, v in memory.items()},
        )
        for i in range(n)
    ]


def soak(**kw: object) -> ScenarioResult:
    rate = 0.25 * C
    args: dict[str, object] = {
        "target_rate": rate,
        "accepted_per_s": rate,
        "ticks": ticks({"ingestion": [100.0] * 9, "postgres": [50.0] * 9}),
        "swaps": [(100.0, 130.0)],
        "e2e_latency_ms": lat(2_000),  # the swaps' tail, not judged
        "e2e_outside_swaps_ms": lat(100),
        "e2e_in_swaps_ms": lat(2_000),
        "pg_shared_buffers_mb": 128.0,
    }
    return scenario(names.SOAK, "grpc-batch", **{**args, **kw})


def test_soak_judges_e2e_outside_the_swaps_and_reports_them_apart() -> None:
    status, measured = verdict(result(soak()), "6.")
    assert status == "PASS", measured
    assert (
        "1 broker swaps (each with the backlog it left: 100-130s; e2e p99 in them 2,000 ms)"
        in measured
    )
    status, measured = verdict(result(soak(e2e_outside_swaps_ms=lat(101))), "6.")
    assert status == "FAIL" and "outside swaps > 100 ms" in measured


def test_soak_fails_on_any_error() -> None:
    assert verdict(result(soak(errors={"grpc UNAVAILABLE": 1})), "6.")[0] == "FAIL"


def test_postgres_may_grow_by_its_shared_buffers_and_no_more() -> None:
    assert pg_allowance_mb(128.0) == 128.0 and pg_allowance_mb(None) == 0.0
    # PSS of the backends climbing as they touch the 128 MB pool: warm-up, within allowance.
    warm = [50.0, 50, 50, 110, 110, 110, 50 + 32 + 128, 210, 210]
    s = soak(ticks=ticks({"ingestion": [100.0] * 9, "postgres": warm}))
    assert soak_growth(s)["postgres"] == (160.0, 160.0)
    assert verdict(result(s), "6.")[0] == "PASS"
    grown = soak(ticks=ticks({"ingestion": [100.0] * 9, "postgres": [*warm[:6], 211, 211, 211]}))
    status, measured = verdict(result(grown), "6.")
    assert status == "FAIL" and "postgres +161 MB (allowed 160)" in measured
    # Any other tree gets no such allowance.
    leak = soak(ticks=ticks({"ingestion": [100.0] * 6 + [133.0] * 3, "postgres": [50.0] * 9}))
    assert verdict(result(leak), "6.")[0] == "FAIL"


STAGES = [
    "envoy",
    "ingestion",
    "postgres",
    "relay",
    "broker",
    "eventhandler",
    "actions",
    "tsdb",
    "inference",
    "query",
    "load",
]


def costs(stages: list[str]) -> Costs:
    return Costs(events=1000, seconds=10, cpu_us={k: 10.0 for k in stages})


def test_cost_table_has_every_stage_and_the_ceilings_floor() -> None:
    r = result(
        scenario(names.HTTP_FIXED, "http", costs=costs(STAGES)),
        batch(costs=costs(STAGES)),
    )
    r.ceilings[0].cpu_us = {"envoy": 80.0, "ingestion": 120.0, "load": 50.0}
    status, measured = verdict(r, "7.")
    assert status == "PASS", measured
    text = summary_table(r)
    for label in ("orchestrator", "tsdb writer", "AI", "watch/query", "handler"):
        assert label in text
    assert "[ceiling] envoy_noop_http" in text
    r.scenarios[1].costs = costs([k for k in STAGES if k != "inference"])
    status, measured = verdict(r, "7.")
    assert status == "n.a." and "lacks inference" in measured


def test_old_results_still_load() -> None:
    old = scenario("latency-1k", "http").to_dict()
    for key in ("group_lag_after", "swaps", "e2e_outside_swaps_ms", "e2e_in_swaps_ms"):
        del old[key]
    assert ScenarioResult.from_dict(old).swaps == []
    assert percentiles([])["count"] == 0


def test_a_projection_older_than_the_probe_is_not_its_arrival() -> None:
    from datetime import UTC, datetime

    from bench.scenarios import arrived

    pending = {"probe-a": 100.0, "probe-b": 100.0}
    rows = [
        ("probe-a", datetime.fromtimestamp(40.0, UTC)),  # an earlier scenario's probe-a
        ("probe-b", datetime.fromtimestamp(100.05, UTC)),
    ]
    got = arrived(pending, rows)
    assert [(s, round(ms)) for s, ms in got] == [(100.0, 50)]
    assert pending == {"probe-a": 100.0}  # still waited for


def test_the_background_note_names_autovacuum_and_checkpoint_writes() -> None:
    from bench.scenarios import PgBackground, background_note

    note = background_note(
        PgBackground(("ingestion.event_store",), 1000), PgBackground((), 1000 + 128 * 1024 // 8)
    )
    assert note == (
        "PostgreSQL background: autovacuum at the start ingestion.event_store; "
        "checkpoint writes during the run 128 MB"
    )
    assert background_note(PgBackground((), None), PgBackground((), None)).endswith("run -")


def test_the_swapped_broker_is_judged_bounded_by_its_threshold_not_flat() -> None:
    # Tansu keeps the bus in memory: a sawtooth up to the swap threshold, then empty again.
    saw = [20.0, 90, 160, 230, 280, 30, 100, 170, 240]
    s = soak(ticks=ticks({"ingestion": [100.0] * 9, "broker": saw}))
    swapped = result(s)
    swapped.config["broker_max_rss_mb"] = 256
    assert soak_growth(s, 256)["broker"] == (280.0, 256 + 32)
    status, measured = verdict(swapped, "6.")
    assert status == "PASS", measured
    assert "broker peak RSS 280 MB of 288 (swapped past 256)" in measured
    # Past the bound: FAIL, named.
    over = result(
        soak(ticks=ticks({"ingestion": [100.0] * 9, "broker": [*saw[:4], 300, *saw[5:]]}))
    )
    over.config["broker_max_rss_mb"] = 256
    status, measured = verdict(over, "6.")
    assert status == "FAIL" and "broker RSS reached 300 MB (bound 288)" in measured
    # Without a threshold (never swapped) the broker is judged flat like any other tree.
    never = result(soak(ticks=ticks({"ingestion": [100.0] * 9, "broker": (saw[:5] * 2)[:9]})))
    status, measured = verdict(never, "6.")
    assert status == "FAIL" and "grew: broker" in measured


def test_the_series_scenario_reads_what_the_console_chart_reads() -> None:
    """The full run's series read asks for the average only (aggregates=avg), as the
    console's chart does; bench-tsdb's paths without it still read all seven."""
    start, end = datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC)
    query = parse_qs(urlsplit(series_path("d", start, end, "1m", names.SERIES_AGGREGATES)).query)
    assert query == {
        "start": ["2026-12-01T00:00:00Z"],
        "end": ["2026-12-02T00:00:00Z"],
        "bucket": ["1m"],
        "aggregates": ["avg"],
    }
    assert "aggregates" not in parse_qs(urlsplit(series_path("d", start, end, "1m")).query)


def test_a_swap_window_lasts_until_the_backlog_it_left_has_drained() -> None:
    # Before the swap (10-13 s): outbox 100, lag 200 (normal). After it the consumers are
    # 5,200 behind and catch up by 17 s; an event sent at 15 s waits for that backlog.
    samples = [
        (8.0, 100, 200),
        (9.0, 100, 200),
        (14.0, 0, 5_200),
        (15.0, None, None),  # unknown: does not end the backlog
        (16.0, 100, 2_000),
        (17.0, 100, 300),
        (18.0, 100, 9_000),  # a later burst is not the swap's
    ]
    assert backlog_windows([(10.0, 13.0)], samples) == [(10.0, 17.0)]
    outside, inside = split_by_windows([(15.0, 900.0), (18.5, 20.0)], [(10.0, 17.0)])
    assert inside == [900.0] and outside == [20.0]
    # Never drained: the window reaches the last sample; no sample after: the swap itself.
    assert backlog_windows([(10.0, 13.0)], samples[:3]) == [(10.0, 14.0)]
    assert backlog_windows([(10.0, 13.0)], samples[:2]) == [(10.0, 13.0)]
