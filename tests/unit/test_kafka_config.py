"""The librdkafka configuration every client gets from CJ_KAFKA_* (ADR 17)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.config.settings import CommonSettings, Env, KafkaSecurity
from services.core.errors import ConfigError
from services.infra.kafka import client_config, consumer_config

ROOT = Path(__file__).resolve().parents[2]


def security(**env: str) -> KafkaSecurity:
    return KafkaSecurity.from_env(Env(env))


def test_default_is_plaintext_for_the_local_broker() -> None:
    config = client_config("127.0.0.1:9092", security())
    assert config == {"bootstrap.servers": "127.0.0.1:9092", "security.protocol": "plaintext"}


def test_sasl_ssl_with_scram_and_a_ca(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    secret = tmp_path / "kafka.password"
    secret.write_text("s3cret\n")
    sec = security(
        CJ_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        CJ_KAFKA_SASL_USERNAME="ingestion",
        CJ_KAFKA_SASL_PASSWORD_FILE=str(secret),
        CJ_KAFKA_SSL_CA_LOCATION=str(ca),
    )
    assert "s3cret" not in repr(sec)
    assert client_config("b-1.msk:9096", sec) == {
        "bootstrap.servers": "b-1.msk:9096",
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "ingestion",
        "sasl.password": "s3cret",
        "enable.ssl.certificate.verification": True,
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.ca.location": str(ca),
    }
    consumer = consumer_config("b-1.msk:9096", "event-handler", security=sec)
    assert consumer["sasl.password"] == "s3cret" and consumer["group.id"] == "event-handler"


def test_common_settings_carry_the_bus_security() -> None:
    common = CommonSettings.from_env(
        Env(
            {
                "CJ_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
                "CJ_KAFKA_SASL_MECHANISM": "scram-sha-256",
                "CJ_KAFKA_SASL_USERNAME": "u",
                "CJ_KAFKA_SASL_PASSWORD": "p",
            }
        )
    )
    assert (common.kafka.protocol, common.kafka.mechanism) == ("sasl_ssl", "SCRAM-SHA-256")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CJ_KAFKA_SECURITY_PROTOCOL": "tls"}, "CJ_KAFKA_SECURITY_PROTOCOL='tls' is not one of"),
        (
            {"CJ_KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "CJ_KAFKA_SASL_USERNAME": "u"},
            "needs CJ_KAFKA_SASL_USERNAME and CJ_KAFKA_SASL_PASSWORD",
        ),
        (
            {
                "CJ_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
                "CJ_KAFKA_SASL_MECHANISM": "GSSAPI",
                "CJ_KAFKA_SASL_USERNAME": "u",
                "CJ_KAFKA_SASL_PASSWORD": "p",
            },
            "CJ_KAFKA_SASL_MECHANISM='GSSAPI' is not one of",
        ),
        (
            {
                "CJ_KAFKA_SECURITY_PROTOCOL": "sasl_plaintext",
                "CJ_KAFKA_SASL_MECHANISM": "PLAIN",
                "CJ_KAFKA_SASL_USERNAME": "u",
                "CJ_KAFKA_SASL_PASSWORD": "p",
            },
            "sends the password in the clear",
        ),
        (
            {"CJ_KAFKA_SASL_USERNAME": "u", "CJ_KAFKA_SASL_PASSWORD": "p"},
            "CJ_KAFKA_SASL_USERNAME, CJ_KAFKA_SASL_PASSWORD set but "
            "CJ_KAFKA_SECURITY_PROTOCOL=plaintext sends no credentials",
        ),
        (
            {"CJ_KAFKA_SSL_CA_LOCATION": "/etc/hostname"},
            "CJ_KAFKA_SSL_CA_LOCATION is set but CJ_KAFKA_SECURITY_PROTOCOL=plaintext",
        ),
        (
            {"CJ_KAFKA_SECURITY_PROTOCOL": "ssl", "CJ_KAFKA_SSL_CA_LOCATION": "/nonexistent.pem"},
            "CJ_KAFKA_SSL_CA_LOCATION='/nonexistent.pem' is not a readable file",
        ),
        (
            {
                "CJ_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
                "CJ_KAFKA_SASL_USERNAME": "u",
                "CJ_KAFKA_SASL_PASSWORD": "p",
                "CJ_KAFKA_SASL_PASSWORD_FILE": "/x",
            },
            "not both",
        ),
        (
            {
                "CJ_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
                "CJ_KAFKA_SASL_USERNAME": "u",
                "CJ_KAFKA_SASL_PASSWORD_FILE": "/nonexistent",
            },
            "CJ_KAFKA_SASL_PASSWORD_FILE='/nonexistent' cannot be read",
        ),
    ],
)
def test_inconsistent_settings_fail_fast(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        security(**env)
    assert message in str(err.value)


@pytest.mark.parametrize("protocol", ["plaintext", "ssl"])
def test_production_builds_no_client_without_tls_and_sasl(protocol: str) -> None:
    sec = security(CJ_ENVIRONMENT="production", CJ_KAFKA_SECURITY_PROTOCOL=protocol)
    with pytest.raises(ConfigError) as err:
        consumer_config("b-1:9092", "g", security=sec)
    assert f"CJ_KAFKA_SECURITY_PROTOCOL={protocol} with CJ_ENVIRONMENT=production" in str(err.value)
    ok = security(
        CJ_ENVIRONMENT="production",
        CJ_KAFKA_SECURITY_PROTOCOL="sasl_ssl",
        CJ_KAFKA_SASL_USERNAME="u",
        CJ_KAFKA_SASL_PASSWORD="p",
    )
    assert client_config("b-1:9096", ok)["security.protocol"] == "sasl_ssl"


def test_every_client_config_is_built_by_client_config() -> None:
    """A producer, consumer or admin client configured anywhere else would skip TLS/SASL."""
    builders = {ROOT / "services/infra/kafka.py"}
    elsewhere = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "services").rglob("*.py")
        if p not in builders and "bootstrap.servers" in p.read_text()
    ]
    assert elsewhere == []
