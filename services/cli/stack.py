"""The local stack: embedded PostgreSQL, broker, the services and Envoy, in start order.

Used by ``cornjacket up`` and by the end-to-end tests, so tests run the same parts a user
runs. Stop order is the reverse and drains: Envoy first (no new requests), then ingestion
(the relay finishes its batch), then the handler (folds in what was published), query, the
action orchestrator (finishes in-flight webhooks; unfinished jobs stay in PostgreSQL), then the
broker and PostgreSQL. With replicas (``StackSettings.replicas``) each service runs as several
processes, stopped together in that same order; Envoy balances over them.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil  # type: ignore[import-untyped, unused-ignore]

from services.actions.secretbox import ensure_key_file
from services.cli import auth as local_auth
from services.cli.embedded import EmbeddedBroker, EmbeddedEnvoy, EmbeddedPostgres, python_service
from services.cli.envoy_config import render
from services.cli.processes import (
    Child,
    StartError,
    env_with,
    free_port,
    open_private,
    port_free,
    wait_until,
)
from services.config.settings import (
    METRICS_PORTS,
    ActionsSettings,
    AuthSettings,
    Env,
    EventHandlerSettings,
    InferenceSettings,
    KafkaSecurity,
    StackSettings,
    TsdbSettings,
)
from services.infra.kafka_lag import GroupLag

log = logging.getLogger(__name__)

# The relay runs as its own process: on 2 cores it then uses the core the API process
# (GIL-bound) leaves idle, instead of sharing the API's interpreter.
SERVICES = ("ingestion", "relay", "eventhandler", "query", "mqtt", "actions")
# Optional services and the StackSettings flag that runs each (time series: issue 17).
OPTIONAL_SERVICES = {"tsdb": "feature_tsdb", "inference": "feature_inference"}
# The services Envoy routes to (or health-checks), each a cluster of its replicas.
ENVOY_UPSTREAMS = (
    "ingestion",
    "query",
    "eventhandler",
    "relay",
    "actions",
    "mqtt",
    "tsdb",
    "inference",
)
# The services with a Kafka client: restarted with the (in-memory) broker.
BUS_SERVICES = ("relay", "eventhandler", "actions", "tsdb", "inference")
# Each service's listening ports (the first is the one Envoy routes to and health-checks);
# a replica gets its own of each, and of its metrics port.
PORT_VARS: dict[str, tuple[str, ...]] = {
    "ingestion": ("CJ_INGESTION_PORT",),
    "relay": ("CJ_RELAY_PORT",),
    "eventhandler": ("CJ_EVENTHANDLER_PORT",),
    "query": ("CJ_QUERY_PORT",),
    "mqtt": ("CJ_MQTT_HEALTH_PORT", "CJ_MQTT_PORT"),
    "actions": ("CJ_ACTIONS_PORT",),
    "tsdb": ("CJ_TSDB_PORT",),
    "inference": ("CJ_INFERENCE_PORT",),
}


def replica_name(service: str, index: int) -> str:
    """Replica 0 keeps the service's own name (and ports, log file); others are name.N."""
    return service if index == 0 else f"{service}.{index}"


@dataclass(frozen=True, slots=True)
class Replica:
    """One process of a service: its name (child, log file) and its ports by variable."""

    service: str
    index: int
    ports: dict[str, int]

    @property
    def name(self) -> str:
        return replica_name(self.service, self.index)

    @property
    def address(self) -> tuple[str, int]:
        """Where its gRPC health (and API, if any) answers."""
        return ("127.0.0.1", self.ports[PORT_VARS[self.service][0]])


def secrets_key_path(data_dir: Path) -> Path:
    """The AES-GCM key of the webhook signing secrets at rest (mode 0600, made on first
    start; `cornjacket rotate-secrets-key` replaces it)."""
    return data_dir / "actions" / "secrets.key"


class Stack:
    def __init__(
        self,
        settings: StackSettings,
        *,
        extra_env: dict[str, str] | None = None,
        say: Callable[[str], None] = print,
    ) -> None:
        self.settings = settings
        self.extra_env = extra_env or {}
        self.say = say
        data = settings.data_dir
        self.logs = data / "logs"
        self.postgres = EmbeddedPostgres(
            data / "pgdata", settings.postgres_port, self.logs / "postgres.log"
        )
        self.broker = EmbeddedBroker(
            settings.broker_port, self.logs / "broker.log", settings.broker_log
        )
        self.envoy = EmbeddedEnvoy(
            data / "envoy.yaml", self.logs / "envoy.log", settings.envoy_concurrency
        )
        # Every process of every service by replica name ("relay", "relay.1", ...).
        self.services: dict[str, Child] = {}
        self.replicas: dict[str, list[Replica]] = {
            name: [
                Replica(name, i, self._replica_ports(name, i))
                for i in range(settings.replica_count(name))
            ]
            for name in self.service_names
        }
        self.broker_since = datetime.now(UTC)
        # The development admin token (every scope), when the stack signs its own tokens.
        self.admin_token = ""  # nosec B105

    def _replica_ports(self, service: str, index: int) -> dict[str, int]:
        """Replica 0 keeps the configured ports; the others get free ones (listed by
        `cornjacket up`), and a metrics port of their own unless metrics are off (0)."""
        s = self.settings
        configured = {
            "CJ_INGESTION_PORT": s.ingestion_port,
            "CJ_RELAY_PORT": s.relay_port,
            "CJ_EVENTHANDLER_PORT": s.eventhandler_port,
            "CJ_QUERY_PORT": s.query_port,
            "CJ_MQTT_HEALTH_PORT": s.mqtt_health_port,
            "CJ_MQTT_PORT": s.mqtt_port,
            "CJ_ACTIONS_PORT": s.actions_port,
            "CJ_TSDB_PORT": s.tsdb_port,
            "CJ_INFERENCE_PORT": s.inference_port,
        }
        metrics_var = f"CJ_{service.upper()}_METRICS_PORT"
        metrics = s.metrics_ports.get(service, 0)
        if index == 0:
            return {**{v: configured[v] for v in PORT_VARS[service]}, metrics_var: metrics}
        return {
            **{v: free_port() for v in PORT_VARS[service]},
            metrics_var: free_port() if metrics else 0,
        }

    def processes(self, service: str) -> list[Child]:
        """The running (or dead) processes of one service, replica 0 first."""
        replicas = self.replicas.get(service, [])  # none: an optional service that is off
        return [self.services[r.name] for r in replicas if r.name in self.services]

    def replica_env(self, replica: Replica, env: dict[str, str]) -> dict[str, str]:
        return {**env, **{var: str(port) for var, port in replica.ports.items()}}

    @property
    def keys(self) -> local_auth.KeyStore:
        """The local signing keys ($CJ_DATA_DIR/auth), which Envoy's JWKS is made from."""
        return local_auth.key_store(self.settings.data_dir)

    @property
    def signs_tokens(self) -> bool:
        """Whether Envoy trusts this stack's own key store (no external JWKS, not insecure)."""
        a = self.settings.auth
        return not a.insecure and not a.jwks_uri and a.jwks_file is None

    @property
    def service_names(self) -> tuple[str, ...]:
        """SERVICES, then the optional ones whose feature flag is on."""
        extra = tuple(n for n, flag in OPTIONAL_SERVICES.items() if getattr(self.settings, flag))
        return (*SERVICES, *extra)

    @property
    def edge_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.edge_port}"

    def service_env(self) -> dict[str, str]:
        s = self.settings
        url = self.postgres.url
        env = {
            "CJ_INGESTION_DATABASE_URL": url,
            "CJ_EVENTHANDLER_DATABASE_URL": url,
            "CJ_QUERY_DATABASE_URL": url,
            "CJ_ACTIONS_DATABASE_URL": url,
            "CJ_TSDB_DATABASE_URL": url,
            "CJ_TSDB_PORT": str(s.tsdb_port),
            "CJ_INFERENCE_DATABASE_URL": url,  # issue 18
            "CJ_INFERENCE_PORT": str(s.inference_port),
            "CJ_INFERENCE_INGESTION_ADDRESS": self._ingestion_target(),
            "CJ_REDPANDA_BROKERS": self.broker.bootstrap,
            "CJ_INGESTION_PORT": str(s.ingestion_port),
            "CJ_INGESTION_RUN_RELAY": "false",
            "CJ_RELAY_PORT": str(s.relay_port),
            "CJ_QUERY_PORT": str(s.query_port),
            "CJ_EVENTHANDLER_PORT": str(s.eventhandler_port),
            "CJ_ACTIONS_PORT": str(s.actions_port),
            "CJ_ACTIONS_SECRETS_KEY_FILE": str(secrets_key_path(s.data_dir)),
            "CJ_MQTT_PORT": str(s.mqtt_port),
            "CJ_MQTT_HEALTH_PORT": str(s.mqtt_health_port),
            "CJ_MQTT_INGESTION_ADDRESS": self._ingestion_target(),
            "CJ_QUERY_INGESTION_ADDRESS": self._ingestion_target(),
            **{f"CJ_{n.upper()}_METRICS_PORT": str(p) for n, p in s.metrics_ports.items()},
        }
        # MQTT devices log in with platform tokens of this stack's keys (or users-file
        # passwords); `--insecure` lets them in anonymously, like the edge.
        if self.signs_tokens:
            self.keys.ensure()
            env["CJ_MQTT_JWKS_FILE"] = str(self.keys.jwks_path)
        elif self.settings.auth.insecure:
            env["CJ_MQTT_ALLOW_ANONYMOUS"] = "true"
        env.update(self.extra_env)
        return env_with(env)

    def _ingestion_target(self) -> str:
        """The gRPC target of ingestion for the services that call it (MQTT gateway, query):
        with replicas, every address (gRPC's pick_first moves to the next when one dies)."""
        addrs = [f"127.0.0.1:{r.address[1]}" for r in self.replicas["ingestion"]]
        return addrs[0] if len(addrs) == 1 else "ipv4:" + ",".join(addrs)

    def check_ports(self) -> None:
        s = self.settings
        wanted = {
            "CJ_EDGE_PORT": s.edge_port,
            "CJ_ENVOY_ADMIN_PORT": s.envoy_admin_port,
            "CJ_POSTGRES_PORT": s.postgres_port,
            "CJ_BROKER_PORT": s.broker_port,
            "CJ_INGESTION_PORT": s.ingestion_port,
            "CJ_QUERY_PORT": s.query_port,
            "CJ_EVENTHANDLER_PORT": s.eventhandler_port,
            "CJ_RELAY_PORT": s.relay_port,
            "CJ_ACTIONS_PORT": s.actions_port,
            **({"CJ_TSDB_PORT": s.tsdb_port} if s.feature_tsdb else {}),
            **({"CJ_INFERENCE_PORT": s.inference_port} if s.feature_inference else {}),
            "CJ_MQTT_PORT": s.mqtt_port,
            "CJ_MQTT_HEALTH_PORT": s.mqtt_health_port,
            **{f"CJ_{n.upper()}_METRICS_PORT": p for n, p in s.metrics_ports.items() if p},
        }
        seen: dict[int, str] = {}
        for var, port in wanted.items():
            if port in seen:
                raise StartError(f"{var} and {seen[port]} both ask for port {port}")
            seen[port] = var
            if not port_free("127.0.0.1", port):
                raise StartError(
                    f"port {port} ({var}) is already in use: stop what runs there "
                    f"(`ss -ltnp 'sport = :{port}'` shows it) or set {var} to another port"
                )

    def start(self) -> None:
        self.check_ports()
        s = self.settings
        # The stack's own folders are its user's only (secrets, logs, data); no folder above
        # them is touched.
        s.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.logs.mkdir(mode=0o700, exist_ok=True)
        t0 = time.monotonic()
        self.say(
            f"starting PostgreSQL 18 on 127.0.0.1:{s.postgres_port} "
            f"(data in {self.postgres.pgdata})"
        )
        self.postgres.start(timeout=s.start_timeout)
        if self.postgres.migrated:
            self.say(
                f"{self.postgres.pgdata} let local users in without a password (made by an "
                "older cornjacket with --auth=trust); PostgreSQL now asks for the password "
                f"kept in {self.postgres.password_file}"
            )
        self.say(f"starting the broker (Tansu, in-memory) on {self.broker.bootstrap}")
        self.broker_since = datetime.now(UTC)
        self.broker.start(timeout=s.start_timeout)
        env = self.service_env()
        ensure_key_file(secrets_key_path(s.data_dir))  # webhook signing secrets at rest
        for name in self.service_names:
            for replica in self.replicas[name]:
                child = python_service(
                    replica.name,
                    name,
                    self.replica_env(replica, env),
                    self.logs / f"{replica.name}.log",
                )
                self.services[replica.name] = child
                self.say(f"starting {replica.name}")
                child.start()
        jwks_file = None
        if self.signs_tokens:
            self.keys.ensure()
            jwks_file = self.keys.jwks_path
            self.admin_token = local_auth.write_admin_token(s.data_dir, s.auth)
        with open_private(self.envoy.config_path, "wb") as config:
            config.write(self.envoy_config(jwks_file).encode())
        self.say(f"starting Envoy on 127.0.0.1:{s.edge_port}")
        self.envoy.start()
        self.say("waiting until every service reports ready ...")
        wait_until(self._ready, s.start_timeout, what="waiting for GET /health to answer 200")
        self.say(f"ready in {time.monotonic() - t0:.1f}s")

    def envoy_config(self, jwks_file: Path | None, *, insecure: bool = False) -> str:
        """Envoy's configuration for this stack; ``insecure`` leaves authentication out (the
        benchmark measures what it costs)."""
        s = self.settings
        return render(
            auth=None if insecure else s.auth,
            edge=s.edge,
            jwks_file=jwks_file,
            edge_port=s.edge_port,
            admin_port=s.envoy_admin_port,
            # Every replica of a service is an endpoint of its cluster.
            upstreams={
                name: [r.address for r in self.replicas[name]]
                for name in self.service_names
                if name in ENVOY_UPSTREAMS
            },
        )

    def _ready(self) -> bool:
        for child in self.children():
            if not child.alive():
                raise StartError(
                    f"{child.name} exited with code {child.exit_code()} during start-up; "
                    f"last lines of {child.log_path}:\n{child.tail()}"
                )
        return self.healthy()

    def healthy(self) -> bool:
        try:
            # B310 (URL scheme): edge_url is always http://127.0.0.1:<port>, built above.
            with urllib.request.urlopen(self.edge_url + "/health", timeout=2) as resp:  # nosec B310
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def children(self) -> list[Child]:
        parts = [self.postgres.child, self.broker.child, *self.services.values(), self.envoy.child]
        return [c for c in parts if c is not None]

    def dead(self) -> list[Child]:
        return [c for c in self.children() if not c.alive()]

    def restart(self, child: Child, *, republish: bool = True) -> None:
        """Start a part that died again; raises StartError if it cannot come back. After a
        broker restart what it held is published again unless told not to (the benchmark
        swaps brokers between scenarios on purpose)."""
        s = self.settings
        if child is self.postgres.child:
            # Services keep running meanwhile: ingest answers 503 until the database is back.
            self.postgres.start(timeout=s.start_timeout)
        elif child is self.broker.child:
            lost_since = self._swap_broker()
            if republish:
                self.republish_lost(lost_since)
        elif child is self.envoy.child:
            self.envoy.start()
        else:
            child.start()

    def _swap_broker(self) -> datetime:
        """Bring up an empty broker in place of the current one (dead or alive); returns when
        the lost one started. The in-memory broker loses its topics and group offsets with
        it, so the services that use the bus restart too: topics are recreated and consumers
        rejoin their groups. Their clients are stopped before the new broker comes up: a
        consumer that reconnects to the new broker while shutting down joins its group and
        leaves a member behind that blocks the next consumer's assignment."""
        bus = [c for name in BUS_SERVICES for c in self.processes(name)]
        for child in bus:  # all at once: each drains and leaves its group
            child.ask_to_stop()
        for child in bus:
            child.stop(deadline=10)
        if self.broker.child is not None:
            # Killed, not stopped: what it holds is discarded anyway, and Tansu holding a few
            # hundred MB takes seconds to exit on SIGTERM.
            self.broker.child.kill()
        lost_since, self.broker_since = self.broker_since, datetime.now(UTC)
        self.broker.start(timeout=self.settings.start_timeout)
        for child in bus:
            child.start()
        return lost_since

    def broker_rss_mb(self) -> float | None:
        """Resident memory of the broker process, None when it is not running."""
        pid = self.broker.child.pid if self.broker.child is not None else None
        if pid is None:
            return None
        try:
            return float(psutil.Process(pid).memory_info().rss) / 2**20
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None

    def rotate_broker(self, *, why: str = "as requested", drain_timeout: float = 60.0) -> bool:
        """Swap the embedded broker for an empty one without losing an event: it keeps every
        message in memory and slows down as it grows (no retention in Tansu's memory
        engine). Ingest goes on throughout (events wait in the outbox). The relay stops
        first; once every consumer group has read to the end of every topic nothing on the
        broker is still needed, and it is swapped. If the consumers do not catch up within
        ``drain_timeout`` the broker is swapped anyway and what it held is published again
        (consumers are idempotent). Returns whether the consumers had caught up."""
        self.say(f"swapping the in-memory broker for an empty one: {why}")
        t0 = time.monotonic()
        for relay in self.processes("relay"):
            relay.ask_to_stop()
        for relay in self.processes("relay"):
            relay.stop(deadline=10)
        t1 = time.monotonic()
        caught_up = self.wait_consumed(drain_timeout)
        t2 = time.monotonic()
        lost_since = self._swap_broker()
        t3 = time.monotonic()
        if caught_up:
            self.say(
                f"broker swapped in {t3 - t0:.1f}s (relay paused {t1 - t0:.1f}s, consumers "
                f"read to the end {t2 - t1:.1f}s, new broker and clients {t3 - t2:.1f}s)"
            )
        else:
            self.say(f"consumers did not catch up within {drain_timeout:.0f}s")
            self.republish_lost(lost_since)
        return caught_up

    def _consumer_groups(self) -> list[tuple[str, tuple[str, ...], KafkaSecurity]]:
        env = Env(self.service_env())
        handler = EventHandlerSettings.from_env(env)
        actions = ActionsSettings.from_env(env)
        groups = [
            (handler.consumer_group, handler.topics, handler.common.kafka),
            (actions.consumer_group, actions.topics, actions.common.kafka),
            *(
                [(t.consumer_group, t.topics, t.common.kafka)]
                if "tsdb" in self.services and (t := TsdbSettings.from_env(env))
                else []
            ),
        ]
        if "inference" in self.services:  # issue 18
            ai = InferenceSettings.from_env(env)
            groups.append((ai.consumer_group, ai.topics, ai.common.kafka))
        return groups

    def wait_consumed(self, timeout: float) -> bool:
        """True once every consumer group of the stack has no lag (False at the timeout)."""
        probes = [
            GroupLag(self.broker.bootstrap, g, t, security=k) for g, t, k in self._consumer_groups()
        ]
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                lags = [p.lag() for p in probes]
                if all(lag == 0 for lag in lags):
                    return True
                time.sleep(0.2)
            return False
        finally:
            for p in probes:
                p.close()

    def republish_lost(self, since: datetime) -> None:
        """The in-memory broker lost every message it held, including some a consumer had
        not read yet. Publish again what was ingested while it ran: every consumer is
        idempotent by event_id (projections move forward only, webhook jobs are unique per
        rule and event), so what they already had changes nothing."""
        self.say(f"republishing events ingested since {since:%H:%M:%S} (the broker lost them)")
        log_path = self.logs / "republish.log"
        with open_private(log_path, "ab") as out:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "services.cli.main",
                    "republish",
                    "--since",
                    since.isoformat(),
                ],
                env=self.service_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=3600,
                check=False,
            )
        if done.returncode != 0:
            raise StartError(f"republishing failed (exit {done.returncode}); see {log_path}")
        self.say("events republished")

    def stop(self) -> None:
        self.envoy.stop()
        # The MQTT gateway first: it settles what devices sent while ingestion still runs.
        # The replicas of one service stop together (consumers leave their group at once).
        # Inference before ingestion: it drains and sends its last anomalies there.
        for name in (
            "mqtt",
            "inference",
            "ingestion",
            "relay",
            "eventhandler",
            "query",
            "actions",
            "tsdb",
        ):
            replicas = self.processes(name)
            for child in replicas:
                child.ask_to_stop()
            for child in replicas:
                code = child.stop(deadline=15)
                if code not in (0, None, -15):
                    self.say(f"{child.name} exited with code {code}; see {child.log_path}")
        self.broker.stop()
        self.postgres.stop()

    def endpoints(self) -> str:
        s = self.settings
        rows = {
            "HTTP/JSON + gRPC (Envoy)": self.edge_url,
            "health": self.edge_url + "/health",
            "MQTT": f"mqtt://127.0.0.1:{s.mqtt_port}",
            "Envoy admin": f"http://127.0.0.1:{s.envoy_admin_port}",
            "PostgreSQL": self.postgres.display_url,
            "Kafka-protocol broker": self.broker.bootstrap,
            "logs": str(self.logs),
            **(
                {"admin token": str(local_auth.admin_token_path(s.data_dir))}
                if self.admin_token
                else {}
            ),
            **{
                f"metrics ({name})": f"http://127.0.0.1:{port}/metrics"
                for name, port in s.metrics_ports.items()
                if port
            },
        }
        # Replicas beyond the first listen on free ports picked at start.
        for replicas in self.replicas.values():
            for r in replicas[1:]:
                ports = ", ".join(
                    f"{var.removeprefix('CJ_').lower()}={port}"
                    for var, port in r.ports.items()
                    if port
                )
                rows[f"replica {r.name}"] = f"127.0.0.1 ({ports}), log {r.name}.log"
        width = max(len(k) for k in rows)
        return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows.items())


def settings_on_free_ports(
    data_dir: Path,
    *,
    start_timeout: float = 90,
    broker_max_rss_mb: int = 256,
    auth: AuthSettings | None = None,
    replicas: dict[str, int] | None = None,
) -> StackSettings:
    """A stack of its own beside any other (tests, benchmarks): every port picked free;
    authentication on with the stack's own keys unless ``auth`` says otherwise; ``replicas``
    as `cornjacket up --replicas`."""
    return StackSettings(
        data_dir=data_dir,
        edge_port=free_port(),
        envoy_admin_port=free_port(),
        postgres_port=free_port(),
        broker_port=free_port(),
        ingestion_port=free_port(),
        query_port=free_port(),
        eventhandler_port=free_port(),
        relay_port=free_port(),
        actions_port=free_port(),
        inference_port=free_port(),
        mqtt_port=free_port(),
        mqtt_health_port=free_port(),
        metrics_ports={name: free_port() for name in METRICS_PORTS},
        tsdb_port=free_port(),
        envoy_concurrency=1,
        start_timeout=start_timeout,
        broker_log="warn",
        broker_max_rss_mb=broker_max_rss_mb,
        auth=auth or AuthSettings.from_env(Env({})),
        replicas=replicas or {},
    )
