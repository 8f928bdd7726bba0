"""The consumers' fetch linger (issue 20, ADR 23): its settings, one per consumer, and the
librdkafka settings consumer_config makes of it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from services.config.settings import (
    ActionsSettings,
    EventHandlerSettings,
    InferenceSettings,
    QuerySettings,
    TsdbSettings,
)
from services.config.settings import Env as SettingsEnv
from services.core.errors import ConfigError
from services.infra.kafka import LINGER_MIN_BYTES, consumer_config, drain_wait

LINGERS: dict[str, tuple[Callable[[SettingsEnv], Any], float]] = {
    "CJ_EVENTHANDLER_FETCH_LINGER": (lambda env: EventHandlerSettings.from_env(env), 0.0),
    "CJ_ACTIONS_FETCH_LINGER": (lambda env: ActionsSettings.from_env(env), 0.1),
    "CJ_TSDB_FETCH_LINGER": (lambda env: TsdbSettings.from_env(env), 0.25),
    "CJ_INFERENCE_FETCH_LINGER": (lambda env: InferenceSettings.from_env(env), 0.05),
    "CJ_WATCH_FETCH_LINGER": (lambda env: QuerySettings.from_env(env).watch, 0.0),
}


@pytest.mark.parametrize("var", sorted(LINGERS))
def test_each_consumer_has_its_default_linger(var: str) -> None:
    parse, default = LINGERS[var]
    assert parse(SettingsEnv({})).fetch_linger == default


@pytest.mark.parametrize("var", sorted(LINGERS))
def test_a_linger_is_a_duration(var: str) -> None:
    parse, _ = LINGERS[var]
    assert parse(SettingsEnv({var: "200ms"})).fetch_linger == pytest.approx(0.2)
    assert parse(SettingsEnv({var: "0"})).fetch_linger == 0.0


@pytest.mark.parametrize("var", sorted(LINGERS))
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("soon", "='soon' is not a duration"),
        ("-5ms", "='-5ms' is not a duration"),
        ("2s", "='2s' is more than 1s: every event would wait that long"),
    ],
)
def test_a_bad_linger_fails_fast_naming_the_variable(var: str, value: str, message: str) -> None:
    parse, _ = LINGERS[var]
    with pytest.raises(ConfigError, match=f"^{var}{message}"):
        parse(SettingsEnv({var: value}))


def test_no_linger_keeps_the_short_fetch_wait() -> None:
    config = consumer_config("b:9092", "g")
    assert config["fetch.wait.max.ms"] == 10
    assert "fetch.min.bytes" not in config  # librdkafka's 1: answered at once


def test_a_linger_makes_the_broker_hold_the_fetch() -> None:
    config = consumer_config("b:9092", "g", fetch_linger=0.25)
    assert config["fetch.wait.max.ms"] == 250
    # More than small events fill by themselves, never more than a fetch may return.
    assert config["fetch.min.bytes"] == LINGER_MIN_BYTES
    assert LINGER_MIN_BYTES <= 1_048_576  # librdkafka's max.partition.fetch.bytes


def test_the_min_bytes_stay_within_smaller_fetch_limits() -> None:
    smaller: dict[str, Any] = {"max.partition.fetch.bytes": 65_536, "fetch.max.bytes": 4_000_000}
    config = consumer_config("b:9092", "g", fetch_linger=0.1, **smaller)
    assert config["fetch.min.bytes"] == 65_536


def test_a_negative_linger_is_refused() -> None:
    with pytest.raises(ConfigError, match="negative"):
        consumer_config("b:9092", "g", fetch_linger=-0.1)


def test_the_drain_outwaits_two_lingers() -> None:
    assert drain_wait(0.25) > 0.5
    assert drain_wait(0.0) > 0.02


@pytest.mark.parametrize("var", sorted(LINGERS))
@pytest.mark.parametrize("raw", ["1ms", "0.0004", "9ms"])
def test_a_linger_shorter_than_the_unlingered_wait_is_refused(var: str, raw: str) -> None:
    # 0 < L < 10 ms would make the broker answer every fetch after L (fetch.wait.max.ms is
    # at least 1): an idle consumer would ask up to 1,000 times a second, ten times the
    # unlingered consumer's 100 - the opposite of what a linger is for.
    parse, _ = LINGERS[var]
    with pytest.raises(ConfigError, match=var):
        parse(SettingsEnv({var: raw}))


@pytest.mark.parametrize("var", sorted(LINGERS))
def test_the_shortest_linger_is_the_unlingered_wait(var: str) -> None:
    parse, _ = LINGERS[var]
    assert parse(SettingsEnv({var: "10ms"})).fetch_linger == pytest.approx(0.01)
    assert parse(SettingsEnv({var: "0ms"})).fetch_linger == 0.0
