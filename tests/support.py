"""Helpers shared by the component and end-to-end tests: real processes, real ports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import grpc
import paho.mqtt.client as mqtt
import psycopg
from confluent_kafka import Consumer, TopicPartition
from grpc_health.v1 import health_pb2, health_pb2_grpc
from paho.mqtt.enums import CallbackAPIVersion

from services.cli.auth import SCOPES
from services.cli.embedded import python_service
from services.cli.processes import Child, env_with
from services.cli.stack import Stack, settings_on_free_ports
from services.config.settings import METRICS_PORTS, AuthSettings, Env
from services.core.events import Event
from services.infra.codec import decode_event

T = TypeVar("T")


@contextmanager
def running_stack(
    data_dir: Path,
    extra_env: Mapping[str, str],
    *,
    insecure: bool = False,
    replicas: dict[str, int] | None = None,
    start_timeout: float = 90,
) -> Iterator[Stack]:
    """The whole stack as `cornjacket up` runs it, on free ports, quiet; stopped on exit.
    ``insecure`` runs it as `cornjacket up --insecure` (no authentication at the edge);
    ``replicas`` as `cornjacket up --replicas`."""
    auth = AuthSettings.from_env(Env({"CJ_AUTH_INSECURE": "true"})) if insecure else None
    settings = settings_on_free_ports(
        data_dir, auth=auth, replicas=replicas, start_timeout=start_timeout
    )
    stack = Stack(settings, extra_env=dict(extra_env), say=lambda m: None)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def token(
    stack: Stack,
    *scopes: str,
    subject: str = "test-client",
    ttl: float = 600,
    **claims: Any,
) -> str:
    """A token the test stack's Envoy accepts: signed with the stack's own key, its issuer
    and audience, the given scopes (default every scope); ``claims`` override any claim."""
    return stack.keys.sign(
        stack.settings.auth,
        subject=subject,
        scopes=scopes or SCOPES,
        ttl=ttl,
        extra=claims,
    )


def bearer(stack: Stack) -> dict[str, str]:
    """The Authorization header of the stack's admin token (none when it runs insecure)."""
    return {"Authorization": f"Bearer {stack.admin_token}"} if stack.admin_token else {}


def cornjacket(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the `cornjacket` command as a user would (this interpreter), output captured;
    ``env`` adds to this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "services.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )


def eventually(
    fn: Callable[[], T | None], *, timeout: float = 15.0, interval: float = 0.05, what: str = ""
) -> T:
    """Poll ``fn`` until it returns a truthy value; fail with ``what`` after ``timeout``."""
    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        value = fn()
        if value:
            return value
        last = value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or fn}; last={last!r}")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def wait_serving(address: str, timeout: float = 30.0, child: Child | None = None) -> None:
    channel = grpc.insecure_channel(address)
    stub = health_pb2_grpc.HealthStub(channel)

    def serving() -> bool:
        if child is not None and not child.alive():
            raise AssertionError(f"{child.name} exited: {child.tail(30)}")
        try:
            resp = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
        except grpc.RpcError:
            return False
        return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)

    try:
        eventually(serving, timeout=timeout, interval=0.1, what=f"{address} SERVING")
    finally:
        channel.close()


@contextmanager
def service_process(
    service: str, env: dict[str, str], log_dir: Path, address: str | None = None
) -> Iterator[Child]:
    """Run ``cornjacket serve <service>`` as a real process; stop it afterwards. Metrics
    are off unless asked for: several processes of one service run side by side here."""
    quiet = {f"CJ_{name.upper()}_METRICS_PORT": "0" for name in METRICS_PORTS}
    child = python_service(service, service, env_with({**quiet, **env}), log_dir / f"{service}.log")
    child.start()
    try:
        if address is not None:
            wait_serving(address, child=child)
        yield child
    finally:
        child.stop(deadline=15)


def fetch_one(url: str, sql: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchone()


def consume_events(
    brokers: str, topic: str, match: Callable[[Event], bool], count: int, timeout: float = 20.0
) -> list[Event]:
    """Read ``topic`` from the beginning (no group commits) until ``count`` events match."""
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": unique("test-reader"),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 10,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10)
        parts = [TopicPartition(topic, p, 0) for p in meta.topics[topic].partitions]
        consumer.assign(parts)
        found: list[Event] = []
        end = time.monotonic() + timeout
        while time.monotonic() < end and len(found) < count:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            event = decode_event(msg.value() or b"")
            if match(event):
                found.append(event)
        return found
    finally:
        consumer.close()


class MqttDevice:
    """A real MQTT client (paho) that records what it receives and which publishes were acked."""

    def __init__(
        self,
        port: int,
        client_id: str,
        username: str | None = None,
        password: str | None = None,
        subscribe_feedback: bool = True,
        will: tuple[str, bytes, bool] | None = None,  # topic, payload, retain
        tls_ca: Path | None = None,
    ) -> None:
        self.client_id = client_id
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.acked: set[int] = set()
        self.connect_reason: str = ""
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.max_inflight_messages_set(50)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_message = self._on_message
        self.client.on_publish = lambda c, u, mid, rc, p: self.acked.add(mid)
        self.client.on_connect = self._on_connect
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=will[2])
        if tls_ca is not None:
            self.client.tls_set(ca_certs=str(tls_ca))
        self._connected = False
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        eventually(lambda: self.connect_reason, timeout=10, what=f"{client_id} CONNACK")
        if self._connected and subscribe_feedback:
            subacks: list[Any] = []
            self.client.on_subscribe = lambda c, u, mid, codes, p: subacks.extend(codes)
            result, _ = self.client.subscribe(f"cornjacket/v1/clients/{client_id}/#", qos=1)
            assert result == 0
            eventually(lambda: subacks, timeout=10, what="SUBACK of the feedback topics")
            assert not subacks[0].is_failure, subacks

    def _on_connect(self, c: Any, u: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connected = not reason.is_failure
        self.connect_reason = str(reason)

    def _on_message(self, c: Any, u: Any, msg: Any) -> None:
        self.received.append((msg.topic, json.loads(msg.payload)))

    @property
    def connected(self) -> bool:
        return self._connected

    def publish(self, topic: str, body: bytes | str | dict[str, Any], qos: int = 1) -> int:
        data = json.dumps(body) if isinstance(body, dict) else body
        info = self.client.publish(topic, data, qos=qos)
        return int(info.mid)

    def wait_acked(self, mid: int, timeout: float = 15.0) -> None:
        eventually(lambda: mid in self.acked, timeout=timeout, what=f"PUBACK of {mid}")

    def feedback(self, kind: str) -> list[dict[str, Any]]:
        topic = f"cornjacket/v1/clients/{self.client_id}/{kind}"
        return [body for t, body in self.received if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
