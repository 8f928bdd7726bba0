from __future__ import annotations

from typing import Any

import pytest

from services.config.settings import (
    ActionsSettings,
    AuthSettings,
    EdgeSettings,
    Env,
    EventHandlerSettings,
    IngestionSettings,
    MqttSettings,
    OutboxSettings,
    StackSettings,
)
from services.core.errors import ConfigError


def test_defaults_run_locally() -> None:
    s = IngestionSettings.from_env(Env({}))
    assert s.outbox == OutboxSettings(
        worker_count=4, batch_size=100, max_retries=5, poll_interval=5.0, linger=0.030
    )
    assert s.common.brokers == "127.0.0.1:9092"
    assert s.common.log_level == "info" and s.common.log_format == "json"
    h = EventHandlerSettings.from_env(Env({}))
    assert h.consumer_group == "event-handler"
    assert h.topics == ("sensor-events", "user-actions", "system-events")
    assert h.poll_timeout == 1.0


def test_durations_accept_units() -> None:
    env = Env({"CJ_OUTBOX_POLL_INTERVAL": "250ms"})
    assert OutboxSettings.from_env(env).poll_interval == 0.25


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("CJ_OUTBOX_WORKER_COUNT", "four", "CJ_OUTBOX_WORKER_COUNT='four' is not an integer"),
        ("CJ_OUTBOX_BATCH_SIZE", "0", "CJ_OUTBOX_BATCH_SIZE=0 is out of range"),
        ("CJ_OUTBOX_POLL_INTERVAL", "soon", "CJ_OUTBOX_POLL_INTERVAL='soon' is not a duration"),
        ("CJ_LOG_LEVEL", "loud", "CJ_LOG_LEVEL='loud' is not one of"),
        ("CJ_INGESTION_DATABASE_URL", "mysql://x", "is not a postgresql:// URL"),
        ("CJ_REDPANDA_BROKERS", "localhost", "is not host:port"),
        ("CJ_INGESTION_PORT", "70000", "out of range"),
        ("CJ_INGESTION_RUN_RELAY", "maybe", "is not a boolean"),
    ],
)
def test_bad_values_fail_fast_naming_variable(var: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        IngestionSettings.from_env(Env({var: value}))


def test_actions_defaults_follow_the_design() -> None:
    from services.config.settings import ActionsSettings

    s = ActionsSettings.from_env(Env({}))
    assert s.consumer_group == "action-orchestrator"
    assert s.topics == ("sensor-events", "user-actions", "system-events")
    assert s.timeout == 30.0 and s.backoff == (1.0, 2.0, 4.0, 8.0, 16.0)
    assert s.rate_limit_per_minute == 10 and s.dedupe_window == 300.0
    assert (s.breaker_threshold, s.breaker_cooldown) == (5, 300.0)
    assert s.block_private_targets is True and s.port == 50056


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("CJ_ACTIONS_BACKOFF", "1s,soon", "CJ_ACTIONS_BACKOFF: 'soon' is not a duration"),
        ("CJ_ACTIONS_BACKOFF_JITTER", "2", "CJ_ACTIONS_BACKOFF_JITTER='2' is out of range 0..1"),
        ("CJ_ACTIONS_RATE_LIMIT_PER_MINUTE", "-1", "CJ_ACTIONS_RATE_LIMIT_PER_MINUTE=-1 is out"),
        ("CJ_ACTIONS_BLOCK_PRIVATE_TARGETS", "maybe", "is not a boolean"),
        ("CJ_ACTIONS_TIMEOUT", "1ms", "CJ_ACTIONS_TIMEOUT='1ms' must be at least"),
    ],
)
def test_bad_actions_settings_name_the_variable(var: str, value: str, message: str) -> None:
    from services.config.settings import ActionsSettings

    with pytest.raises(ConfigError) as err:
        ActionsSettings.from_env(Env({var: value}))
    assert message in str(err.value)


def test_broker_memory_limit_defaults_on_and_rejects_negatives() -> None:
    assert StackSettings.from_env(Env({})).broker_max_rss_mb == 256
    assert StackSettings.from_env(Env({"CJ_BROKER_MAX_RSS_MB": "0"})).broker_max_rss_mb == 0
    with pytest.raises(ConfigError, match="CJ_BROKER_MAX_RSS_MB=-1 is out of range"):
        StackSettings.from_env(Env({"CJ_BROKER_MAX_RSS_MB": "-1"}))


def test_auth_defaults_are_secure_with_local_keys() -> None:
    auth = AuthSettings.from_env(Env({}))
    assert not auth.insecure
    assert (auth.issuer, auth.audience, auth.clock_skew) == ("cornjacket-local", "cornjacket", 30)
    assert auth.jwks_file is None and auth.jwks_uri == ""
    assert StackSettings.from_env(Env({})).auth == auth


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CJ_AUTH_INSECURE": "perhaps"}, "CJ_AUTH_INSECURE='perhaps' is not a boolean"),
        ({"CJ_AUTH_CLOCK_SKEW": "forever"}, "CJ_AUTH_CLOCK_SKEW='forever' is not a duration"),
        ({"CJ_AUTH_CLOCK_SKEW": "1h"}, "CJ_AUTH_CLOCK_SKEW=3600s must be whole seconds"),
        ({"CJ_AUTH_CLOCK_SKEW": "1500ms"}, "CJ_AUTH_CLOCK_SKEW=1.5s must be whole seconds"),
        ({"CJ_AUTH_JWKS_URI": "http://idp.example.com/jwks"}, "CJ_AUTH_JWKS_URI='http://idp"),
        ({"CJ_AUTH_JWKS_URI": "ftp://x/jwks"}, "is not an https://host"),
        (
            {"CJ_AUTH_JWKS_URI": "https://idp/jwks", "CJ_AUTH_JWKS_FILE": "/k.json"},
            "set CJ_AUTH_JWKS_FILE or CJ_AUTH_JWKS_URI, not both",
        ),
        ({"CJ_AUTH_ISSUER": 'a"b'}, "CJ_AUTH_ISSUER='a\"b' must be printable"),
        ({"CJ_AUTH_AUDIENCE": "two words"}, "CJ_AUTH_AUDIENCE='two words' must be printable"),
    ],
)
def test_bad_auth_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        AuthSettings.from_env(Env(env))
    assert message in str(err.value)


def test_auth_settings_parse_a_remote_jwks() -> None:
    auth = AuthSettings.from_env(
        Env(
            {
                "CJ_AUTH_JWKS_URI": "https://idp.example.com/.well-known/jwks.json",
                "CJ_AUTH_ISSUER": "https://idp.example.com/",
                "CJ_AUTH_AUDIENCE": "cornjacket-prod",
                "CJ_AUTH_CLOCK_SKEW": "1m",
                "CJ_AUTH_JWKS_CACHE": "10m",
            }
        )
    )
    assert auth.jwks_uri.endswith("/jwks.json") and auth.clock_skew == 60
    assert auth.jwks_cache == 600.0


PRODUCTION_INSECURE = [
    (AuthSettings, "CJ_AUTH_INSECURE", "true"),
    (MqttSettings, "CJ_MQTT_ALLOW_ANONYMOUS", "true"),
    (ActionsSettings, "CJ_ACTIONS_BLOCK_PRIVATE_TARGETS", "false"),
    (EdgeSettings, "CJ_EDGE_HOSTS", "api.example.com,*"),
]


@pytest.mark.parametrize(("cls", "name", "value"), PRODUCTION_INSECURE)
def test_production_refuses_insecure_switches(cls: Any, name: str, value: str) -> None:
    env = {name: value, "CJ_MQTT_USERS": ""}
    cls.from_env(Env({**env, "CJ_ENVIRONMENT": "development"}))  # a local experiment: fine
    with pytest.raises(ConfigError, match=name):
        cls.from_env(Env({**env, "CJ_ENVIRONMENT": "production"}))


def test_production_accepts_the_secure_settings() -> None:
    env = {"CJ_ENVIRONMENT": "production", "CJ_EDGE_HOSTS": "api.example.com,*.example.com"}
    assert not AuthSettings.from_env(Env(env)).insecure
    assert ActionsSettings.from_env(Env(env)).block_private_targets
    assert EdgeSettings.from_env(Env(env)).hosts == ("api.example.com", "*.example.com")
