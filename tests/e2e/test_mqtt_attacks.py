"""Attacks on the MQTT gateway: real amqtt, real paho clients, real ingestion.

The module runs a gateway of its own (`cornjacket serve mqtt`, as in production: no
anonymous access, a users file, platform tokens of the stack's keys, TLS only) beside the
end-to-end stack and calls that stack's ingestion. Every attack adds a row to the table the terminal summary prints.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.cli.processes import free_port
from services.cli.stack import Stack
from services.mqtt.access import hash_password, render_user
from tests.support import MqttDevice, eventually, fetch_one, service_process, token, unique

pytestmark = pytest.mark.e2e

Log = list[tuple[str, str, str, bool]]
PASSWORD = "battery-staple-9"
VICTIM = "victim"
ATTACKER = "attacker"
FLEET = "fleet"  # may use client ids "fleet." + anything


class Gateway:
    """The module's gateway: TLS only (a certificate of its own), users file and tokens."""

    def __init__(self, tls_port: int, plain_port: int, ca: Path) -> None:
        self.port = tls_port
        self.plain_port = plain_port  # CJ_MQTT_PORT, where nothing may listen
        self.ca = ca

    def device(
        self, client_id: str, username: str | None, password: str | None = PASSWORD, **kw: Any
    ) -> MqttDevice:
        return MqttDevice(self.port, client_id, username, password, tls_ca=self.ca, **kw)

    def raw(self) -> ssl.SSLSocket:
        context = ssl.create_default_context(cafile=str(self.ca))
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=20)
        return context.wrap_socket(sock, server_hostname="127.0.0.1")


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "mqtt.crt", folder / "mqtt.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture(scope="module")
def gateway(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    data = tmp_path_factory.mktemp("mqtt-attacks")
    users = data / "users.toml"
    h = hash_password(PASSWORD)
    users.write_text(
        render_user(VICTIM, h, [], [])
        + render_user(ATTACKER, h, [], [])
        + render_user(FLEET, h, [], [], client_id_prefix="fleet.")
    )
    port, tls_port, health = free_port(), free_port(), free_port()
    cert, key = _self_signed(data)
    env = {
        "CJ_ENVIRONMENT": "production",
        "CJ_LOG_FORMAT": "json",
        "CJ_MQTT_PORT": str(port),
        "CJ_MQTT_TLS_PORT": str(tls_port),
        "CJ_MQTT_TLS_CERT_FILE": str(cert),
        "CJ_MQTT_TLS_KEY_FILE": str(key),
        "CJ_MQTT_JWKS_FILE": str(stack.keys.jwks_path),
        "CJ_AUTH_ISSUER": stack.settings.auth.issuer,
        "CJ_AUTH_AUDIENCE": stack.settings.auth.audience,
        "CJ_MQTT_HEALTH_PORT": str(health),
        "CJ_MQTT_INGESTION_ADDRESS": f"127.0.0.1:{stack.settings.ingestion_port}",
        "CJ_MQTT_USERS_FILE": str(users),
        "CJ_MQTT_CONNECT_TIMEOUT": "1s",
        # Every refused login here comes from 127.0.0.1: throttling has its unit tests.
        "CJ_MQTT_LOGIN_FAILURES": "1000",
        "CJ_MQTT_MAX_MESSAGE_BYTES": "65536",
    }
    with service_process("mqtt", env, data, f"127.0.0.1:{health}"):
        yield Gateway(tls_port, port, cert)


def _row(log: Log, attack: str, expected: str, got: str, passed: bool) -> None:
    log.append((f"mqtt: {attack}", expected, got, passed))
    assert passed, f"{attack}: expected {expected}, got {got}"


def _subscribe(dev: MqttDevice, topic_filter: str) -> list[Any]:
    codes: list[Any] = []
    dev.client.on_subscribe = lambda c, u, mid, rc, p: codes.extend(rc)
    dev.client.subscribe(topic_filter, qos=1)
    return eventually(lambda: codes, what=f"SUBACK of {topic_filter}")


@pytest.mark.parametrize("client_id", ["#", "+", "victim/x", "victim", "fleet.1"])
def test_client_id_not_bound_to_the_user(gateway: Gateway, attack_log: Log, client_id: str) -> None:
    dev = gateway.device(client_id, ATTACKER, subscribe_feedback=False)
    try:
        got = dev.connect_reason if not dev.connected else "connected"
        if dev.connected and client_id in "#+":
            codes = _subscribe(dev, "cornjacket/v1/clients/+/#")
            got = f"connected, SUBACK {codes[0]}"
        _row(
            attack_log,
            f"attacker with client id {client_id!r}",
            "CONNACK refused",
            got,
            not dev.connected and "identifier" in got.lower(),
        )
    finally:
        dev.close()


def test_own_client_ids_are_accepted(gateway: Gateway) -> None:
    for client_id, user in ((ATTACKER, ATTACKER), ("fleet.7", FLEET)):
        dev = gateway.device(client_id, user)
        try:
            assert dev.connected, dev.connect_reason
        finally:
            dev.close()


def test_wrong_password_with_the_victims_client_id(gateway: Gateway, attack_log: Log) -> None:
    victim = gateway.device(VICTIM, VICTIM)
    assert victim.connected, victim.connect_reason
    drops: list[object] = []
    victim.client.on_disconnect = lambda c, u, flags, reason, p: drops.append(reason)
    try:
        thief = gateway.device(VICTIM, VICTIM, "wrong-password", subscribe_feedback=False)
        thief.close()
        # The victim is still connected and still subscribed: its ack arrives.
        mid = victim.publish(
            f"cornjacket/v1/envelopes/sensor.reading/{VICTIM}",
            {"payload": {"value": 1, "unit": "C"}, "ack": True},
        )
        acked = True
        try:
            victim.wait_acked(mid, timeout=10)
            eventually(lambda: victim.feedback("acks"), timeout=10, what="victim's ack")
        except AssertionError:
            acked = False
        got = f"thief: {thief.connect_reason}; victim {'kept' if acked and not drops else 'lost'}"
        _row(
            attack_log,
            "wrong password, victim's client id",
            "refused, victim kept",
            got,
            not thief.connected and acked and not drops,
        )
    finally:
        victim.close()


def test_will_to_another_devices_ack_topic(gateway: Gateway, attack_log: Log) -> None:
    fake = b'{"results":[{"status":"accepted","event_id":"forged"}]}'
    for topic, retain in (
        (f"cornjacket/v1/clients/{VICTIM}/acks", False),
        (f"cornjacket/v1/clients/{VICTIM}/acks", True),
    ):
        dev = gateway.device(
            ATTACKER, ATTACKER, subscribe_feedback=False, will=(topic, fake, retain)
        )
        try:
            got = dev.connect_reason if not dev.connected else "connected"
            _row(
                attack_log,
                f"will to {topic}{' (retained)' if retain else ''}",
                "CONNACK refused",
                got,
                not dev.connected and "authorized" in got.lower(),
            )
        finally:
            dev.close()


def test_anonymous_is_refused(gateway: Gateway, attack_log: Log) -> None:
    dev = gateway.device(unique("anon"), None, None, subscribe_feedback=False)
    try:
        got = dev.connect_reason if not dev.connected else "connected"
        _row(attack_log, "anonymous client", "CONNACK refused", got, not dev.connected)
    finally:
        dev.close()


def test_wrong_password_is_refused(gateway: Gateway, attack_log: Log) -> None:
    dev = gateway.device(VICTIM, VICTIM, "guess", subscribe_feedback=False)
    try:
        got = dev.connect_reason if not dev.connected else "connected"
        _row(attack_log, "wrong password", "CONNACK refused", got, not dev.connected)
    finally:
        dev.close()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(s: str) -> bytes:
    return struct.pack("!H", len(s.encode())) + s.encode()


def _connect_packet(client_id: str, username: str, password: str) -> bytes:
    body = _string("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 30)
    body += _string(client_id) + _string(username) + _string(password)
    return b"\x10" + _varint(len(body)) + body


def _closed(sock: socket.socket | ssl.SSLSocket) -> bool:
    """Read until the gateway closes the connection (the socket timeout bounds the wait)."""
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, ssl.SSLError):
        pass
    except TimeoutError:
        return False
    return True


def test_silent_connection_is_dropped(gateway: Gateway, attack_log: Log) -> None:
    with gateway.raw() as sock:
        closed = _closed(sock)  # no CONNECT sent at all
    _row(
        attack_log,
        "connection that never sends CONNECT",
        "closed",
        "closed" if closed else "still open",
        closed,
    )


def test_oversized_publish_is_refused_unread(gateway: Gateway, attack_log: Log) -> None:
    with gateway.raw() as sock:
        sock.sendall(_connect_packet(ATTACKER, ATTACKER, PASSWORD))
        connack = sock.recv(4)
        assert connack == b"\x20\x02\x00\x00", connack
        # A PUBLISH announcing 200 MiB, of which only the topic is sent: a gateway that
        # reads a packet whole before checking its size would wait here for the rest.
        topic = _string(f"cornjacket/v1/events/t/{ATTACKER}")
        sock.sendall(b"\x30" + _varint(200 * 1024 * 1024) + topic)
        closed = _closed(sock)
    _row(
        attack_log,
        "PUBLISH announcing 200 MiB",
        "closed before the body",
        "closed" if closed else "waiting for the body",
        closed,
    )


def test_idempotency_key_replayed_by_another_user(
    gateway: Gateway, stack: Stack, attack_log: Log
) -> None:
    key = unique("device-key")
    attacker = gateway.device(ATTACKER, ATTACKER)
    victim = gateway.device(VICTIM, VICTIM)
    try:
        # The attacker learnt (or guessed) a key the victim is going to use, and sends it first.
        mid = attacker.publish(
            f"cornjacket/v1/envelopes/sensor.reading/{ATTACKER}",
            {"payload": {"value": 666, "unit": "C"}, "idempotency_key": key, "ack": True},
        )
        attacker.wait_acked(mid)
        mid = victim.publish(
            f"cornjacket/v1/envelopes/sensor.reading/{VICTIM}",
            {"payload": {"value": 21, "unit": "C"}, "idempotency_key": key, "ack": True},
        )
        victim.wait_acked(mid)
        ack = eventually(lambda: victim.feedback("acks"), what="victim's ack")[-1]["results"][0]
        event_id = ack.get("event_id", "")
        row = eventually(
            lambda: fetch_one(
                stack.postgres.url,
                "SELECT aggregate_id FROM ingestion.event_store WHERE event_id = %s",
                (event_id,),
            ),
            what="the acknowledged event in the event store",
        )
        got = f"{ack['status']}, event of {row[0]}"
        _row(
            attack_log,
            "idempotency key replayed by another user",
            f"accepted, event of {VICTIM}",
            got,
            ack["status"] == "accepted" and row[0] == VICTIM,
        )
    finally:
        attacker.close()
        victim.close()


@pytest.mark.parametrize(
    ("attack", "username", "make"),
    [
        ("token of another device", ATTACKER, lambda st: token(st, "events:write", subject=VICTIM)),
        (
            "expired token",
            VICTIM,
            lambda st: token(
                st, "events:write", subject=VICTIM, exp=int(time.time()) - 3600, iat=0, nbf=0
            ),
        ),
        ("token without events:write", VICTIM, lambda st: token(st, "read", subject=VICTIM)),
    ],
)
def test_bad_tokens_are_refused(
    gateway: Gateway, stack: Stack, attack_log: Log, attack: str, username: str, make: Any
) -> None:
    dev = gateway.device(username, username, make(stack), subscribe_feedback=False)
    try:
        got = dev.connect_reason if not dev.connected else "connected"
        _row(attack_log, attack, "CONNACK refused", got, not dev.connected)
    finally:
        dev.close()


def test_a_device_token_logs_in_and_publishes_as_its_subject(
    gateway: Gateway, stack: Stack
) -> None:
    # "sensor-9" is in no users file: the token alone admits it, with the default ACL.
    dev = gateway.device("sensor-9", "sensor-9", token(stack, "events:write", subject="sensor-9"))
    try:
        assert dev.connected, dev.connect_reason
        mid = dev.publish(
            "cornjacket/v1/envelopes/sensor.reading/sensor-9",
            {"payload": {"value": 3, "unit": "C"}, "ack": True},
        )
        dev.wait_acked(mid)
        ack = eventually(lambda: dev.feedback("acks"), what="ack")[0]["results"][0]
        assert ack["status"] == "accepted"
        mid = dev.publish("cornjacket/v1/events/sensor.reading/sensor-8", {"value": 3, "unit": "C"})
        dev.wait_acked(mid)
        errors = eventually(lambda: dev.feedback("errors"), what="ACL error")
        assert errors[0]["code"] == "forbidden"
    finally:
        dev.close()


def test_tls_is_required_where_configured(gateway: Gateway, attack_log: Log) -> None:
    refused = False
    try:
        socket.create_connection(("127.0.0.1", gateway.plain_port), timeout=5).close()
    except ConnectionRefusedError:
        refused = True
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=20) as sock:
        sock.sendall(_connect_packet(VICTIM, VICTIM, PASSWORD))
        try:
            answer = sock.recv(4)
        except ConnectionResetError:
            answer = b""
    got = f"plain port {'refused' if refused else 'open'}, TLS port answered {answer!r}"
    _row(
        attack_log,
        "plain-text MQTT where TLS is configured",
        "refused, no CONNACK",
        got,
        refused and not answer.startswith(b"\x20"),
    )
