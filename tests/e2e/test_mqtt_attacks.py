"""Attacks on the MQTT gateway: real amqtt, real paho clients, real ingestion.

The module runs a gateway of its own (`cornjacket serve mqtt`, as in production: no
anonymous access, a users file) beside the end-to-end stack and calls that stack's
ingestion. Every attack adds a row to the table the terminal summary prints.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from typing import Any

import pytest

from services.cli.processes import free_port
from services.cli.stack import Stack
from services.mqtt.access import hash_password, render_user
from tests.support import MqttDevice, eventually, fetch_one, service_process, unique

pytestmark = pytest.mark.e2e

Log = list[tuple[str, str, str, bool]]
PASSWORD = "battery-staple-9"
VICTIM = "victim"
ATTACKER = "attacker"
FLEET = "fleet"  # may use client ids "fleet." + anything


class Gateway:
    def __init__(self, port: int) -> None:
        self.port = port

    def device(
        self, client_id: str, username: str | None, password: str | None = PASSWORD, **kw: Any
    ) -> MqttDevice:
        return MqttDevice(self.port, client_id, username, password, **kw)


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
    port, health = free_port(), free_port()
    env = {
        "CJ_ENVIRONMENT": "production",
        "CJ_LOG_FORMAT": "json",
        "CJ_MQTT_PORT": str(port),
        "CJ_MQTT_HEALTH_PORT": str(health),
        "CJ_MQTT_INGESTION_ADDRESS": f"127.0.0.1:{stack.settings.ingestion_port}",
        "CJ_MQTT_USERS_FILE": str(users),
        "CJ_MQTT_CONNECT_TIMEOUT": "1s",
        # Every refused login here comes from 127.0.0.1: throttling has its unit tests.
        "CJ_MQTT_LOGIN_FAILURES": "1000",
        "CJ_MQTT_MAX_MESSAGE_BYTES": "65536",
    }
    with service_process("mqtt", env, data, f"127.0.0.1:{health}"):
        yield Gateway(port)


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


def _closed(sock: socket.socket) -> bool:
    """Read until the gateway closes the connection (the socket timeout bounds the wait)."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


def test_silent_connection_is_dropped(gateway: Gateway, attack_log: Log) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=20) as sock:
        closed = _closed(sock)  # no CONNECT sent at all
    _row(
        attack_log,
        "connection that never sends CONNECT",
        "closed",
        "closed" if closed else "still open",
        closed,
    )


def test_oversized_publish_is_refused_unread(gateway: Gateway, attack_log: Log) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=20) as sock:
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
