"""Two processes of every working service under steady HTTP, gRPC and MQTT load; one of each
kind SIGKILLed in turn (ingestion, relay, event handler, action orchestrator).

The stack runs as `cornjacket up --replicas ingestion=2,relay=2,eventhandler=2,actions=2`.
No supervisor runs during a kill: the survivor has to take over (Envoy skips the dead
ingestion, the relay's slots move to the other relay, the consumer group hands the dead
consumer's partitions to the other); the killed process is started again only after the
takeover was seen, before the next kill.

Accept order is well defined: each load client sends one aggregate's events one after the
other, the next only once the previous was acknowledged (an error is retried with the same
idempotency key, so a request answered with an error but stored is not a second event). Each
event carries its aggregate's sequence number as payload ``value``. Afterwards:

- every acknowledged event is in the event store exactly once, and nothing else is;
- per aggregate, the events on the bus (a test consumer reads every topic from the start),
  duplicates removed keeping the first occurrence, are exactly the accepted sequence; a
  duplicate is allowed only of a row the killed relay held locked, its first copy published
  from the held batch before the kill, its second no later than the measured takeover;
- the relay is killed mid-batch over a backlog of several rows per aggregate (both relays
  SIGSTOPped until the outbox holds them; relay 0 frozen while pg_locks shows it holding slot
  locks); the other relays everything else meanwhile and none of the held slots' rows (no
  overtaking), and after the kill every held row goes out again from the survivor;
- the projections equal a replay of the event store; the handler's "lost" counts aggregates
  whose projection is not their last accepted event and dead letters of the run;
- every event matching the webhook rule reached the receiver under exactly one webhook-id.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
import psutil  # type: ignore[import-untyped, unused-ignore]
import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition
from cornjacket.v1 import ingestion_pb2, ingestion_pb2_grpc

from services.cli.auth import edge_channel
from services.cli.processes import Child
from services.cli.stack import Stack
from services.config.settings import Env, EventHandlerSettings
from services.infra.codec import decode_event, to_value
from services.infra.kafka_lag import GroupLag
from services.ingestion.relay_store import SLOT_LOCK_KEY
from tests.faults.helpers import (
    FAULT_ENV,
    await_outbox_drained,
    projections_match_event_store,
)
from tests.support import (
    MqttDevice,
    bearer,
    eventually,
    running_stack,
    token,
    unique,
    wait_serving,
)
from tests.webhook_receiver import Receiver, receiver

pytestmark = pytest.mark.faults

REPLICAS = {"ingestion": 2, "relay": 2, "eventhandler": 2, "actions": 2}
# Killed in this order, each after the previous one's takeover was seen.
KILLS = ("ingestion", "relay", "eventhandler", "actions")
READING = "sensor.reading"
HOOKED = "sensor.reading.hooked"  # the gRPC client's events: the webhook rule matches them
# How long one event may take to be acknowledged while a replica is down (a retry is paced,
# not a synchronisation: the client cannot know when the edge skips the dead replica).
ACK_DEADLINE = 120.0
RETRY_PAUSE = 0.2


class OrderedLoad(threading.Thread):
    """One protocol's client: cycles over its aggregates at about ``rate`` events/s; an
    aggregate's next event goes out only after its previous one was acknowledged."""

    def __init__(self, kind: str, aggregates: list[str], rate: float) -> None:
        super().__init__(daemon=True, name=f"load-{kind}")
        self.kind, self.aggregates, self.rate = kind, aggregates, rate
        self.acked: dict[str, int] = collections.Counter()  # aggregate -> events acked
        self.event_ids: list[str] = []  # HTTP and gRPC answer with the event id
        self.total = 0
        self.retries = 0
        self.last_ok = 0.0
        self.ack_times: list[float] = []
        self.failure = ""
        self.errors: collections.Counter[str] = collections.Counter()
        self.halt = threading.Event()

    def send(self, aggregate: str, seq: int, key: str) -> str | None:
        """Send one event; the event id (or "" if the protocol gives none) once it is
        acknowledged, None when it must be sent again."""
        raise NotImplementedError

    def run(self) -> None:
        try:
            self._run()
        except Exception as e:  # reported by the test, never swallowed
            self.failure = f"{type(e).__name__}: {e}"

    def _run(self) -> None:
        i, due = 0, time.monotonic()
        while not self.halt.is_set():
            aggregate = self.aggregates[i % len(self.aggregates)]
            seq = self.acked[aggregate]
            key = f"{aggregate}-{seq}"
            give_up = time.monotonic() + ACK_DEADLINE
            while (event_id := self._try(aggregate, seq, key)) is None:
                self.retries += 1
                if time.monotonic() > give_up:
                    self.failure = f"{key} not acknowledged within {ACK_DEADLINE:.0f}s"
                    return
                time.sleep(RETRY_PAUSE)
            if event_id:
                self.event_ids.append(event_id)
            self.acked[aggregate] = seq + 1
            self.total += 1
            self.last_ok = time.monotonic()
            self.ack_times.append(self.last_ok)
            i += 1
            due += 1 / self.rate
            time.sleep(max(0.0, due - time.monotonic()))

    def _try(self, aggregate: str, seq: int, key: str) -> str | None:
        try:
            return self.send(aggregate, seq, key)
        except (httpx.HTTPError, grpc.RpcError) as e:
            self.errors[type(e).__name__] += 1
            return None


class HttpLoad(OrderedLoad):
    def __init__(self, stack: Stack, aggregates: list[str], rate: float) -> None:
        super().__init__("http", aggregates, rate)
        self.http = httpx.Client(base_url=stack.edge_url, timeout=10, headers=bearer(stack))

    def send(self, aggregate: str, seq: int, key: str) -> str | None:
        r = self.http.post(
            "/api/v1/events",
            json={
                "event_type": READING,
                "aggregate_id": aggregate,
                "payload": {"value": seq, "unit": "C"},
                "idempotency_key": key,
            },
        )
        if r.status_code != 202:
            self.errors[f"http {r.status_code}"] += 1
            return None
        return str(r.json()["event_id"])


class GrpcLoad(OrderedLoad):
    def __init__(self, stack: Stack, aggregates: list[str], rate: float) -> None:
        super().__init__("grpc", aggregates, rate)
        channel = edge_channel(f"127.0.0.1:{stack.settings.edge_port}", stack.admin_token)
        self.stub = ingestion_pb2_grpc.IngestionServiceStub(channel)

    def send(self, aggregate: str, seq: int, key: str) -> str | None:
        resp = self.stub.IngestEvent(
            ingestion_pb2.IngestEventRequest(
                event_type=HOOKED,
                aggregate_id=aggregate,
                payload=to_value({"value": seq, "unit": "C"}),
                idempotency_key=key,
            ),
            timeout=10,
        )
        return str(resp.event_id)


class MqttLoad(OrderedLoad):
    """Devices logged in with platform tokens; each publishes to its own aggregate (its
    user name). PUBACK is the acknowledgement: paho sends a publish again itself when the
    gateway did not acknowledge it, and the gateway retries ingestion with the same keys,
    so the client only waits (up to ACK_DEADLINE) for the PUBACK."""

    def __init__(self, stack: Stack, aggregates: list[str], rate: float) -> None:
        super().__init__("mqtt", aggregates, rate)
        self.devices = {
            a: MqttDevice(
                stack.settings.mqtt_port,
                a,
                a,
                token(stack, "events:write", subject=a, ttl=3600),
                subscribe_feedback=False,
            )
            for a in aggregates
        }

    def send(self, aggregate: str, seq: int, key: str) -> str | None:
        dev = self.devices[aggregate]
        body = {"value": seq, "unit": "C"}
        mid = dev.publish(f"cornjacket/v1/events/{READING}/{aggregate}", body)
        dev.wait_acked(mid, timeout=ACK_DEADLINE)
        return ""

    def close(self) -> None:
        for dev in self.devices.values():
            dev.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("replicas"),
        # A job the killed orchestrator had claimed comes back after its lease
        # (CJ_ACTIONS_TIMEOUT + 10 s): 15 s here instead of 40 s.
        {**FAULT_ENV, "CJ_ACTIONS_TIMEOUT": "5s"},
        replicas=REPLICAS,
        start_timeout=240,
    ) as s:
        yield s


def metric(port: int, name: str, contains: str = "") -> float:
    """The sum of one Prometheus counter's samples (those whose labels contain ``contains``)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:  # nosec B310
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") and contains in line
    )


def outbox_ids(url: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {str(r[0]) for r in conn.execute("SELECT outbox_id FROM ingestion.outbox")}


# Rows per aggregate waiting in the outbox before the relay kill: with several rows of one
# aggregate claimable at once, a relay that let a later row overtake a held one (as the
# SKIP LOCKED claim did) reorders.
BACKLOG_PER_AGGREGATE = 3
# Kafka's message timestamps are whole milliseconds of the producer's clock, this machine's.
CLOCK_MARGIN_MS = 1000


@dataclass
class RelayKill:
    """What the relay kill held and when: the bus check allows a duplicate only of these."""

    held: dict[str, tuple[str, int]] = field(default_factory=dict)  # outbox_id -> (agg, value)
    slots: list[int] = field(default_factory=list)
    batch_from_ms: float = 0.0  # the held batch was claimed no earlier than this
    kill_ms: float = 0.0
    takeover_ms: float = 0.0
    overtaken: int = 0  # rows of the held slots published while the dead relay held them


def _pg_port(url: str) -> int:
    return int(psycopg.conninfo.conninfo_to_dict(url)["port"] or 5432)


def _signal(child: Child, sig: signal.Signals) -> None:
    """Signal a child's process group (it runs in a session of its own)."""
    assert child.pid is not None and child.alive(), child.name
    os.killpg(child.pid, sig)


def _client_ports(child: Child, pg_port: int) -> list[int]:
    """The local ports of the child's connections to PostgreSQL (pg_stat_activity's
    client_port of its backends)."""
    assert child.pid is not None
    root = psutil.Process(child.pid)
    procs = [root, *root.children(recursive=True)]
    return [
        c.laddr.port
        for p in procs
        for c in p.net_connections(kind="tcp")
        if c.raddr and c.raddr.port == pg_port
    ]


def held_slots(url: str, ports: list[int]) -> list[int]:
    """The outbox slots whose advisory lock (SLOT_LOCK_KEY, slot) a backend of ``ports``
    holds."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT DISTINCT l.objid::int FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = %s "
            "AND l.objsubid = 2 AND a.client_port = ANY(%s)",
            (SLOT_LOCK_KEY, ports),
        ).fetchall()
    return sorted(r[0] for r in rows)


def slot_rows(url: str, slots: list[int]) -> tuple[dict[str, tuple[str, int]], set[str]]:
    """Every outbox row of ``slots`` as outbox_id -> (aggregate, value), and the ids of
    those another transaction holds locked (FOR UPDATE SKIP LOCKED skips exactly them)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT outbox_id::text, event_payload->>'aggregate_id', "
            "(event_payload->'payload'->>'value')::float::int "
            "FROM ingestion.outbox WHERE slot = ANY(%s)",
            (slots,),
        ).fetchall()
        free = conn.execute(
            "SELECT outbox_id::text FROM ingestion.outbox WHERE slot = ANY(%s) "
            "FOR UPDATE SKIP LOCKED",
            (slots,),
        ).fetchall()
        conn.rollback()
    every = {r[0]: (r[1], r[2]) for r in rows}
    return every, set(every) - {r[0] for r in free}


def backlog(url: str, run: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT event_payload->>'aggregate_id', count(*) FROM ingestion.outbox "
            "WHERE event_payload->>'aggregate_id' LIKE %s GROUP BY 1",
            (f"{run}-%",),
        ).fetchall()
    return {a: int(n) for a, n in rows}


def poll_until(fn: Any, timeout: float, interval: float = 0.005) -> bool:
    """Poll ``fn`` (a database query) until it is true; False after ``timeout``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if fn():
            return True
        time.sleep(interval)
    return False


def kill_relay_mid_batch(
    stack: Stack, loads: list[OrderedLoad], run: str, relay_kill: RelayKill
) -> tuple[float, float, int]:
    """Build a backlog of several rows per aggregate with both relays stopped (SIGSTOP),
    let relay 0 claim until it is caught holding slot locks, freeze it there, let relay 1
    drain everything else (it must not touch the held slots), then SIGKILL relay 0 and
    wait until relay 1 has published every row relay 0 held. Returns (killed monotonic,
    takeover seconds, rows held)."""
    url = stack.postgres.url
    pg_port = _pg_port(url)
    dead, survivor = stack.processes("relay")
    aggregates = [a for ld in loads for a in ld.aggregates]
    for child in (dead, survivor):
        _signal(child, signal.SIGSTOP)
    first_stop_ms = time.time() * 1000
    try:
        eventually(
            lambda: (
                (b := backlog(url, run))
                and all(b.get(a, 0) >= BACKLOG_PER_AGGREGATE for a in aggregates)
            ),
            timeout=60,
            interval=0.1,
            what=f"{BACKLOG_PER_AGGREGATE} rows of every aggregate waiting in the outbox",
        )
        ports = _client_ports(dead, pg_port)
        held: set[str] = set()
        every: dict[str, tuple[str, int]] = {}
        slots: list[int] = []
        for attempt in range(50):
            cont_ms = time.time() * 1000
            _signal(dead, signal.SIGCONT)
            poll_until(lambda p=ports: held_slots(url, p), timeout=10)
            _signal(dead, signal.SIGSTOP)
            slots = held_slots(url, ports)
            if slots:
                every, held = slot_rows(url, slots)
                if held:
                    relay_kill.batch_from_ms = (first_stop_ms if attempt == 0 else cont_ms) - (
                        CLOCK_MARGIN_MS
                    )
                    break
            ports = _client_ports(dead, pg_port)  # the pool may have opened another
        assert held, "relay 0 never caught holding outbox rows"
        _signal(survivor, signal.SIGCONT)
        # The survivor relays every other slot's rows meanwhile, never the held ones. (A
        # bound, not a synchronisation: PostgreSQL ends the frozen transaction after 20 s.)
        others = set(outbox_ids(url)) - set(every)
        poll_until(lambda: not (others & outbox_ids(url)), timeout=10, interval=0.05)
        relay_kill.overtaken = len(set(every) - outbox_ids(url))
        assert held_slots(url, ports) == slots, "relay 0 lost its slots before the kill"
    except BaseException:
        for child in (dead, survivor):
            if child.alive():
                _signal(child, signal.SIGCONT)
        raise
    relay_kill.held = {i: every[i] for i in held}
    relay_kill.slots = slots
    killed = time.monotonic()
    relay_kill.kill_ms = time.time() * 1000
    dead.kill()
    eventually(
        lambda: not (held & outbox_ids(url)),
        timeout=60,
        interval=0.05,
        what="the rows the dead relay held published by the other",
    )
    takeover = time.monotonic() - killed
    relay_kill.takeover_ms = takeover * 1000
    return killed, takeover, len(held)


def projected(url: str, prefix: str) -> dict[str, float]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT aggregate_id, (state->>'value')::float FROM eventhandler.projections "
            "WHERE projection_type = 'sensor_state' AND aggregate_id LIKE %s",
            (f"{prefix}%",),
        ).fetchall()
    return {a: v for a, v in rows}


def group_lag(stack: Stack, service: str) -> int:
    """Messages the service's consumer group had not committed (the event handler's group
    comes first in the stack's list, the orchestrator's second)."""
    group, topics, security = stack._consumer_groups()[0 if service == "eventhandler" else 1]
    probe = GroupLag(stack.broker.bootstrap, group, topics, security=security)
    try:
        return int(probe.lag() or 0)
    finally:
        probe.close()


class BusReader:
    """Reads every event topic from the start, keeping (aggregate, value, timestamp ms) of
    this run's events in bus order per partition (an aggregate lives on one partition)."""

    def __init__(self, stack: Stack, prefix: str) -> None:
        self.prefix = prefix
        self.seen: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)
        # event id -> where it is on the bus (topic, partition, offset, timestamp ms), each copy
        self.positions: dict[str, list[tuple[str, int, int, int]]] = collections.defaultdict(list)
        self.consumer = Consumer(
            {
                "bootstrap.servers": stack.broker.bootstrap,
                "group.id": unique("replica-order-reader"),
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 10,
            }
        )
        topics = EventHandlerSettings.from_env(Env(stack.service_env())).topics
        parts = []
        for topic in topics:
            meta = self.consumer.list_topics(topic, timeout=10)
            parts += [TopicPartition(topic, p, 0) for p in meta.topics[topic].partitions]
        self.consumer.assign(parts)

    def read(self) -> int:
        msgs = self.consumer.consume(500, timeout=0.2)
        for msg in msgs:
            if msg.error():
                continue
            event = decode_event(msg.value() or b"")
            if event.aggregate_id.startswith(self.prefix):
                _, ts = msg.timestamp()
                self.seen[event.aggregate_id].append((int(event.payload["value"]), ts))
                self.positions[event.event_id].append(
                    (str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0), ts)
                )
        return len(msgs)

    def close(self) -> None:
        self.consumer.close()


def test_replicas_take_over_without_losing_doubling_or_reordering(
    stack: Stack, replica_report: list[dict[str, Any]]
) -> None:
    run = unique("rep")
    with (
        receiver() as hooks,
        httpx.Client(base_url=stack.edge_url, timeout=10, headers=bearer(stack)) as http,
    ):
        r = http.post(
            "/api/v1/rules",
            json={
                "name": unique("replica-rule"),
                "event_type_pattern": HOOKED,
                "target": {"url": hooks.url("/replicas")},
            },
        )
        assert r.status_code == 200, r.text
        loads: list[OrderedLoad] = [
            HttpLoad(stack, [f"{run}-h{i}" for i in range(12)], rate=30),
            GrpcLoad(stack, [f"{run}-g{i}" for i in range(12)], rate=25),
            MqttLoad(stack, [f"{run}-m{i}" for i in range(4)], rate=15),
        ]
        relay_kill = RelayKill()
        rows: list[dict[str, Any]] = []
        t0 = time.monotonic()
        for load in loads:
            load.start()
        try:
            eventually(lambda: all(ld.total >= 60 for ld in loads), timeout=90, what="load")
            # Envoy and the consumer group spread the work over both replicas of each.
            share_the_work(stack, hooks)
            for service in KILLS:
                rows.append(kill_and_take_over(stack, service, loads, hooks, run, relay_kill, t0))
        finally:
            for load in loads:
                load.halt.set()
            for load in loads:
                load.join(timeout=ACK_DEADLINE + 10)
            for load in loads:
                if isinstance(load, MqttLoad):
                    load.close()
        for load in loads:
            assert not load.failure, (load.kind, load.failure, load.errors)
        results = check_everything(stack, loads, hooks, run, relay_kill)
    for row in rows:
        row.update(results[row["service"]])
        replica_report.append(row)
    # The checks (each also a column of the table).
    assert results["ingestion"]["lost"] == 0, results
    assert results["ingestion"]["doubled"] == 0, results
    assert results["relay"]["lost"] == 0, results
    assert results["relay"]["reordered"] == 0, results
    assert results["relay"]["bad_duplicates"] == [], results
    assert results["relay"]["overtaken"] == 0, results
    assert results["relay"]["held_not_republished"] == [], results
    assert results["eventhandler"]["lost"] == 0, results
    assert results["actions"]["lost"] == 0, results
    assert results["actions"]["doubled"] == 0, results
    assert results["ingestion"]["unacked_stored"] == 0, results


def share_the_work(stack: Stack, hooks: Receiver) -> None:
    """Each replica of each service has done part of the work (its own metrics port)."""
    counters = {
        "ingestion": ("cornjacket_grpc_requests_total", "Ingest"),
        "relay": ("cornjacket_relay_events_total", ""),
        "eventhandler": ("cornjacket_handler_events_total", ""),
        "actions": ("cornjacket_webhook_attempts_total", ""),
    }

    def every_replica_worked() -> bool:
        for service, (name, contains) in counters.items():
            for replica in stack.replicas[service]:
                port = replica.ports[f"CJ_{service.upper()}_METRICS_PORT"]
                if metric(port, name, contains) <= 0:
                    return False
        return True

    eventually(every_replica_worked, timeout=90, interval=1.0, what="every replica working")


def kill_and_take_over(
    stack: Stack,
    service: str,
    loads: list[OrderedLoad],
    hooks: Receiver,
    run: str,
    relay_kill: RelayKill,
    t0: float,
) -> dict[str, Any]:
    """SIGKILL replica 0 of ``service``; wait until the survivor has taken over its work;
    start it again and wait until it serves. Returns the row of the report."""
    url = stack.postgres.url
    child = stack.services[service]
    replica = stack.replicas[service][0]
    retries = sum(ld.retries for ld in loads)
    in_flight = 0
    if service == "relay":
        killed, takeover, in_flight = kill_relay_mid_batch(stack, loads, run, relay_kill)
    else:
        if service in ("eventhandler", "actions"):
            in_flight = group_lag(stack, service)
        killed = time.monotonic()
        child.kill()
    totals = [ld.total for ld in loads]
    # Work that arrives after the kill: some of it lands on the dead replica's share (its
    # slots, its partitions) and can only be done by the survivor taking it over.
    eventually(
        lambda: all(ld.total >= n + 30 for ld, n in zip(loads, totals, strict=True)),
        timeout=ACK_DEADLINE,
        what=f"load acknowledged after the {service} kill",
    )
    if service == "ingestion":
        # Every client (HTTP and gRPC through Envoy, MQTT through the gateway) answered.
        done_at = max(next(t for t in ld.ack_times if t > killed) for ld in loads)
        in_flight = sum(ld.retries for ld in loads) - retries
    elif service == "relay":
        done_at = killed + takeover  # measured in kill_relay_mid_batch
    elif service == "eventhandler":
        # The sensor.reading aggregates (HTTP, MQTT) have a projection each.
        want = {
            a: n - 1 for ld in loads if not isinstance(ld, GrpcLoad) for a, n in ld.acked.items()
        }
        eventually(
            lambda: all(projected(url, run).get(a, -1) >= v for a, v in want.items()),
            timeout=90,
            interval=0.1,
            what="projections caught up by the surviving handler",
        )
        done_at = time.monotonic()
    else:
        wanted = {e for ld in loads if isinstance(ld, GrpcLoad) for e in ld.event_ids}
        eventually(
            lambda: wanted <= delivered_ids(hooks).keys(),
            timeout=90,
            interval=0.1,
            what="webhooks delivered by the surviving orchestrator",
        )
        done_at = time.monotonic()
    takeover = done_at - killed
    stack.restart(child)
    wait_serving(f"127.0.0.1:{replica.address[1]}", timeout=120, child=child)
    return {
        "service": service,
        "replicas": REPLICAS[service],
        "killed_at": killed - t0,
        "takeover_s": takeover,
        "in_flight": in_flight,
    }


def delivered_ids(hooks: Receiver) -> dict[str, set[str]]:
    ids: dict[str, set[str]] = collections.defaultdict(set)
    for req in hooks.received("/replicas"):
        body = json.loads(req.body)
        ids[body["event"]["event_id"]].add(req.headers["webhook-id"])
    return ids


def check_everything(
    stack: Stack, loads: list[OrderedLoad], hooks: Receiver, run: str, relay_kill: RelayKill
) -> dict[str, dict[str, Any]]:
    url = stack.postgres.url
    accepted = {a: n for ld in loads for a, n in ld.acked.items()}  # aggregate -> count
    total = sum(accepted.values())
    await_outbox_drained(stack)
    # Event store: each accepted (aggregate, value) exactly once, nothing else.
    with psycopg.connect(url, autocommit=True) as conn:
        stored = conn.execute(
            "SELECT aggregate_id, (payload->>'value')::float::int, count(*) "
            "FROM ingestion.event_store "
            "WHERE aggregate_id LIKE %s GROUP BY 1, 2",
            (f"{run}-%",),
        ).fetchall()
    have = {(a, v): c for a, v, c in stored}
    lost = sum(1 for a, n in accepted.items() for v in range(n) if (a, v) not in have)
    doubled = sum(c - 1 for c in have.values())
    unacked = sum(1 for a, v in have if v >= accepted.get(a, 0))
    # The bus, per aggregate in publication order.
    bus = BusReader(stack, f"{run}-")
    try:

        def all_on_bus() -> bool:
            bus.read()
            return all(len({v for v, _ in bus.seen.get(a, [])}) >= n for a, n in accepted.items())

        with_timeout(all_on_bus, "every accepted event on the bus")
    finally:
        bus.close()
    reordered, bus_lost, duplicates, bad = 0, 0, 0, []
    # Only what the killed relay held (published, perhaps, but not deleted) may come twice:
    # its first copy from the held batch (claimed no earlier than batch_from_ms, published
    # before the kill), its second from the survivor, no later than the measured takeover.
    held = set(relay_kill.held.values())
    first_from = relay_kill.batch_from_ms
    second_by = relay_kill.kill_ms + relay_kill.takeover_ms + CLOCK_MARGIN_MS
    for a, n in accepted.items():
        firsts: list[int] = []
        first_ts: dict[int, int] = {}
        for v, ts in bus.seen.get(a, []):
            if v in first_ts:
                duplicates += 1
                if not (
                    (a, v) in held
                    and first_from <= first_ts[v] <= relay_kill.kill_ms
                    and relay_kill.kill_ms <= ts <= second_by
                ):
                    bad.append((a, v, first_ts[v], ts))
                continue
            first_ts[v] = ts
            firsts.append(v)
        bus_lost += len(set(range(n)) - set(firsts))
        if [v for v in firsts if v < n] != list(range(n)):
            reordered += 1
    # Every held row went out again from the survivor after the kill.
    republished = {
        (a, v) for a, copies in bus.seen.items() for v, ts in copies if ts >= relay_kill.kill_ms
    }
    not_republished = sorted(held - republished)
    # Projections equal a replay of the event store.
    eventually(
        lambda: projections_match_event_store(stack),
        timeout=120,
        interval=1.0,
        what="projections equal a replay of the event store",
    )
    # The event handler: a lost event that a later one of its aggregate superseded is
    # invisible in projections (they keep the latest by (event_time, event_id)); what can
    # be seen is an aggregate whose projection is not its last accepted event, and an event
    # of this run dead-lettered.
    projections = projected(url, f"{run}-")
    sensor = {a: n for ld in loads if not isinstance(ld, GrpcLoad) for a, n in ld.acked.items()}
    stale = sum(1 for a, n in sensor.items() if projections.get(a) != n - 1)
    with psycopg.connect(url, autocommit=True) as conn:
        dead_lettered = conn.execute(
            "SELECT count(*) FROM eventhandler.dlq d JOIN ingestion.event_store e "
            "ON e.event_id = d.event_id WHERE e.aggregate_id LIKE %s",
            (f"{run}-%",),
        ).fetchone()
    handler_lost = stale + int(dead_lettered[0] if dead_lettered else 0)
    # Every event matching the rule (the gRPC client's) delivered under one webhook-id.
    hooked = {e for ld in loads if isinstance(ld, GrpcLoad) for e in ld.event_ids}
    try:
        with_timeout(lambda: hooked <= delivered_ids(hooks).keys(), "a webhook for every event")
    except AssertionError as e:
        missing = hooked - delivered_ids(hooks).keys()
        raise AssertionError(f"{e}; {webhook_evidence(stack, missing)}") from e
    ids = delivered_ids(hooks)
    return {
        "ingestion": {
            "events": total,
            "lost": lost,
            "doubled": doubled,
            "reordered": "-",
            "unacked_stored": unacked,
        },
        "relay": {
            "events": total,
            "lost": bus_lost,
            "doubled": duplicates,
            "reordered": reordered,
            "bad_duplicates": bad,
            "overtaken": relay_kill.overtaken,
            "held_not_republished": not_republished,
        },
        "eventhandler": {
            "events": total,
            "lost": handler_lost,
            "doubled": "-",
            "reordered": "-",
            "note": "eventhandler lost = aggregates whose projection is not their last "
            "accepted event + dead letters of the run (a lost event a later one superseded "
            "is invisible: projections keep the latest); doubled '-': a redelivered event is "
            "an idempotent no-op and leaves no trace to count",
        },
        "actions": {
            "events": len(hooked),
            "lost": len(hooked - ids.keys()),
            "doubled": sum(1 for e in hooked if len(ids.get(e, ())) > 1) + len(ids.keys() - hooked),
            "reordered": "-",
        },
    }


def webhook_evidence(stack: Stack, missing: set[str]) -> str:
    """What a failed webhook wait needs to be diagnosed: the events without a webhook, their
    delivery jobs (none: the orchestrator never planned them), their bus position as the
    test's own reader saw it, and where the services' logs are."""
    some = sorted(missing)[:5]
    with psycopg.connect(stack.postgres.url, autocommit=True) as conn:
        jobs = conn.execute(
            "SELECT event_id::text, status, attempts FROM actions.deliveries "
            "WHERE event_id::text = ANY(%s)",
            (some,),
        ).fetchall()
    bus = BusReader(stack, "")
    try:
        # To the end of the bus: reads come back empty before the first fetch and after the last.
        read, deadline = 0, time.monotonic() + 60
        while time.monotonic() < deadline:
            n = bus.read()
            if n == 0 and read:
                break
            read += n
        where = {e: bus.positions.get(e) for e in some}
    finally:
        bus.close()
    return (
        f"{len(missing)} event(s) got no webhook, e.g. {some}; their delivery jobs: {jobs}; "
        f"on the bus at (topic, partition, offset, timestamp ms): {where}; "
        f"service logs in {stack.logs}"
    )


def with_timeout(fn: Any, what: str) -> None:
    eventually(fn, timeout=120, interval=0.5, what=what)
