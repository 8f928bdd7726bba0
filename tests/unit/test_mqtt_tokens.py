"""Platform tokens as MQTT passwords, and the gateway's security settings."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from services.cli.auth import KeyStore, key_store
from services.config.settings import AuthSettings, Env, MqttSettings
from services.core.errors import ConfigError
from services.mqtt.access import (
    BAD_CREDENTIALS,
    Access,
    Identity,
    InvalidToken,
    Login,
    Refused,
)
from services.mqtt.tokens import TokenVerifier

AUTH = AuthSettings.from_env(Env({}))


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    store = key_store(tmp_path)
    store.ensure()
    return store


def verifier(keys: KeyStore) -> TokenVerifier:
    return TokenVerifier(keys.jwks_path, issuer=AUTH.issuer, audience=AUTH.audience, leeway=0)


def sign(
    keys: KeyStore,
    subject: str = "dev-1",
    scopes: tuple[str, ...] = ("events:write",),
    **extra: Any,
) -> str:
    return keys.sign(AUTH, subject=subject, scopes=scopes, ttl=600, extra=extra)


def test_a_valid_token_names_its_subject(keys: KeyStore) -> None:
    token = sign(keys)
    assert TokenVerifier.looks_like(token) and not TokenVerifier.looks_like("correct-horse")
    assert verifier(keys).subject(token) == "dev-1"


@pytest.mark.parametrize(
    ("extra", "scopes", "message"),
    [
        ({"exp": int(time.time()) - 60}, ("events:write",), "expired"),
        ({"aud": "someone-else"}, ("events:write",), "(?i)audience"),
        ({"iss": "elsewhere"}, ("events:write",), "(?i)issuer"),
        ({}, ("read",), "events:write"),
        ({}, ("events:writer",), "events:write"),
    ],
)
def test_bad_tokens_are_refused(
    keys: KeyStore, extra: dict[str, Any], scopes: tuple[str, ...], message: str
) -> None:
    with pytest.raises(InvalidToken, match=message):
        verifier(keys).subject(sign(keys, scopes=scopes, **extra))


def test_a_key_added_later_is_found(keys: KeyStore) -> None:
    v = verifier(keys)
    assert v.subject(sign(keys)) == "dev-1"
    keys.rotate(kid="cj-rotated")
    assert v.subject(sign(keys, subject="dev-2")) == "dev-2"


async def test_a_token_logs_in_only_as_its_subject(keys: KeyStore) -> None:
    acl = Access({}, allow_anonymous=False, tokens=verifier(keys))
    who = await acl.login(Login("dev-1", "dev-1", sign(keys)))
    assert who == Identity("dev-1", "dev-1", token=True)
    assert acl.may_publish(who, "cornjacket/v1/events/t/dev-1")
    assert not acl.may_publish(who, "cornjacket/v1/events/t/dev-2")
    with pytest.raises(Refused) as e:
        await acl.login(Login("dev-2", "dev-2", sign(keys)))
    assert e.value.code == BAD_CREDENTIALS


def test_anonymous_access_only_when_asked_for(tmp_path: Path) -> None:
    users = tmp_path / "users.toml"
    users.write_text("")
    for environment in ("development", "test", "production"):
        env = {"CJ_ENVIRONMENT": environment, "CJ_MQTT_USERS_FILE": str(users)}
        assert not MqttSettings.from_env(Env(env)).allow_anonymous
    env = {"CJ_MQTT_ALLOW_ANONYMOUS": "true"}
    assert MqttSettings.from_env(Env(env)).allow_anonymous
    with pytest.raises(ConfigError, match="CJ_MQTT_USERS_FILE"):
        MqttSettings.from_env(Env({}))


def test_tls_settings(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("x")
    base = {"CJ_MQTT_ALLOW_ANONYMOUS": "true"}
    with pytest.raises(ConfigError, match="both CJ_MQTT_TLS_CERT_FILE"):
        MqttSettings.from_env(Env({**base, "CJ_MQTT_TLS_CERT_FILE": str(cert)}))
    tls = MqttSettings.from_env(
        Env({**base, "CJ_MQTT_TLS_CERT_FILE": str(cert), "CJ_MQTT_TLS_KEY_FILE": str(key)})
    )
    assert tls.tls_port == 8883 and not tls.plain
    with pytest.raises(ConfigError, match="CJ_MQTT_PLAIN=false needs"):
        MqttSettings.from_env(Env({**base, "CJ_MQTT_PLAIN": "false"}))
