"""The benchmark's "keeps up" rule (bench.results.is_sustained)."""

from __future__ import annotations

from bench.results import Tick, is_sustained


def ticks(outbox: list[int], lag: list[int] | None = None) -> list[Tick]:
    lags = lag if lag is not None else [0] * len(outbox)
    return [
        Tick(
            t=float(i),
            accepted=0,
            errors=0,
            accept_p50_ms=0,
            accept_p99_ms=0,
            outbox_depth=o,
            consumer_lag=g,
        )
        for i, (o, g) in enumerate(zip(outbox, lags, strict=True))
    ]


def test_small_backlogs_keep_up_whatever_their_shape() -> None:
    assert is_sustained(ticks([0, 500, 1000, 1500, 1900, 1900]), rate=10_000)


def test_linear_growth_is_falling_behind() -> None:
    assert not is_sustained(ticks([i * 3000 for i in range(18)]))


def test_a_flat_backlog_within_a_second_of_input_keeps_up() -> None:
    flat = [0] + [8000] * 17
    assert is_sustained(ticks(flat), rate=10_000)
    assert is_sustained(ticks([0] * 18, flat), rate=10_000)


def test_a_slow_climb_of_seconds_of_input_is_behind() -> None:
    # The closed-loop run at 16,725 events/s (15:33 UTC): the growth rule alone passed it.
    outbox = [
        0,
        5500,
        6000,
        14000,
        15500,
        20000,
        23500,
        31500,
        36500,
        36500,
        34500,
        39000,
        39000,
        32500,
        41500,
        46500,
        57500,
        59500,
    ]
    assert is_sustained(ticks(outbox))
    assert not is_sustained(ticks(outbox), rate=16_725)


def test_unknown_values_do_not_count() -> None:
    t = ticks([0, 0, 0])
    for tick in t:
        tick.outbox_depth = None
        tick.consumer_lag = None
    assert is_sustained(t, rate=1000)
