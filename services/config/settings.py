"""Typed settings, parsed once at start-up from ``CJ_*`` environment variables.

A malformed value fails fast with the variable's name and the offending value; it never
falls back to the default silently.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.core.errors import ConfigError

DEFAULT_DB_URL = "postgresql://postgres@127.0.0.1:55432/cornjacket"
DEFAULT_BROKERS = "127.0.0.1:9092"

_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class Env:
    """Reads and converts variables, naming the variable in every error."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if environ is None else environ

    def text(self, name: str, default: str) -> str:
        value = self._env.get(name)
        if value is None or value == "":
            return default
        return value.strip()

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.text(name, default).lower()
        if value not in allowed:
            raise ConfigError(f"{name}={value!r} is not one of {', '.join(allowed)}")
        return value

    def integer(self, name: str, default: int, *, lo: int, hi: int) -> int:
        raw = self._env.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw.strip())
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not an integer") from None
        if not lo <= value <= hi:
            raise ConfigError(f"{name}={value} is out of range {lo}..{hi}")
        return value

    def port(self, name: str, default: int) -> int:
        return self.integer(name, default, lo=1, hi=65535)

    def flag(self, name: str, default: bool) -> bool:
        raw = self._env.get(name)
        if raw is None or raw == "":
            return default
        value = raw.strip().lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}={raw!r} is not a boolean (true/false)")

    def duration(self, name: str, default: float, *, lo: float = 0.0) -> float:
        """Seconds from '5s', '250ms', '1m', '24h' or a bare number of seconds."""
        raw = self._env.get(name)
        if raw is None or raw == "":
            return default
        m = _DURATION_RE.match(raw.strip())
        if not m:
            raise ConfigError(f"{name}={raw!r} is not a duration like 5s, 250ms, 1m or 24h")
        value = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        if value < lo:
            raise ConfigError(f"{name}={raw!r} must be at least {lo}s")
        return value

    def csv(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        raw = self._env.get(name)
        if raw is None or raw.strip() == "":
            return default
        items = tuple(part.strip() for part in raw.split(",") if part.strip())
        if not items:
            raise ConfigError(f"{name}={raw!r} lists nothing")
        return items

    def db_url(self, name: str) -> str:
        value = self.text(name, DEFAULT_DB_URL)
        if not value.startswith(("postgresql://", "postgres://")):
            raise ConfigError(f"{name}={value!r} is not a postgresql:// URL")
        return value


KAFKA_PROTOCOLS = ("plaintext", "ssl", "sasl_plaintext", "sasl_ssl")
KAFKA_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """How every Kafka client (producer, consumer, admin) authenticates and encrypts:
    librdkafka's security.protocol, sasl.*, ssl.ca.location (ADR 17).

    ``plaintext`` (the default) is for the local stack's broker on 127.0.0.1; with
    CJ_ENVIRONMENT=production only sasl_ssl is accepted (encrypted and authenticated).
    """

    protocol: str = "plaintext"
    mechanism: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    ca_location: Path | None = None
    # CJ_ENVIRONMENT=production: a client is refused unless the bus is sasl_ssl (checked when
    # a client is built, so processes without one, query and mqtt, need no bus credentials).
    production: bool = False

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("sasl_")

    @property
    def tls(self) -> bool:
        return self.protocol in ("ssl", "sasl_ssl")

    @classmethod
    def from_env(cls, env: Env) -> KafkaSecurity:
        protocol = env.choice("CJ_KAFKA_SECURITY_PROTOCOL", "plaintext", KAFKA_PROTOCOLS)
        deployment = env.choice(
            "CJ_ENVIRONMENT", "development", ("development", "test", "production")
        )
        mechanism = env.text("CJ_KAFKA_SASL_MECHANISM", "").upper()
        username = env.text("CJ_KAFKA_SASL_USERNAME", "")
        password = env.text("CJ_KAFKA_SASL_PASSWORD", "")
        password_file = env.text("CJ_KAFKA_SASL_PASSWORD_FILE", "")
        ca = env.text("CJ_KAFKA_SSL_CA_LOCATION", "")
        if password and password_file:
            raise ConfigError("set CJ_KAFKA_SASL_PASSWORD or CJ_KAFKA_SASL_PASSWORD_FILE, not both")
        if password_file:
            try:
                password = Path(password_file).expanduser().read_text().strip()
            except OSError as e:
                raise ConfigError(
                    f"CJ_KAFKA_SASL_PASSWORD_FILE={password_file!r} cannot be read: {e.strerror}"
                ) from None
            if not password:
                raise ConfigError(f"CJ_KAFKA_SASL_PASSWORD_FILE={password_file!r} is empty")
        sasl = protocol.startswith("sasl_")
        if sasl:
            mechanism = mechanism or "SCRAM-SHA-512"
            if mechanism not in KAFKA_MECHANISMS:
                raise ConfigError(
                    f"CJ_KAFKA_SASL_MECHANISM={mechanism!r} is not one of "
                    f"{', '.join(KAFKA_MECHANISMS)}"
                )
            if not username or not password:
                raise ConfigError(
                    f"CJ_KAFKA_SECURITY_PROTOCOL={protocol} needs CJ_KAFKA_SASL_USERNAME and "
                    "CJ_KAFKA_SASL_PASSWORD (or CJ_KAFKA_SASL_PASSWORD_FILE)"
                )
            if protocol == "sasl_plaintext" and mechanism == "PLAIN":
                raise ConfigError(
                    "CJ_KAFKA_SASL_MECHANISM=PLAIN over CJ_KAFKA_SECURITY_PROTOCOL="
                    "sasl_plaintext sends the password in the clear: use sasl_ssl"
                )
        else:
            stray = [
                name
                for name, value in (
                    ("CJ_KAFKA_SASL_MECHANISM", mechanism),
                    ("CJ_KAFKA_SASL_USERNAME", username),
                    ("CJ_KAFKA_SASL_PASSWORD", password),
                )
                if value
            ]
            if stray:
                raise ConfigError(
                    f"{', '.join(stray)} set but CJ_KAFKA_SECURITY_PROTOCOL={protocol} sends no "
                    "credentials: use sasl_ssl"
                )
        ca_location = Path(ca).expanduser() if ca else None
        if ca_location is not None:
            if protocol not in ("ssl", "sasl_ssl"):
                raise ConfigError(
                    f"CJ_KAFKA_SSL_CA_LOCATION is set but CJ_KAFKA_SECURITY_PROTOCOL={protocol} "
                    "does not use TLS: use ssl or sasl_ssl"
                )
            if not ca_location.is_file():
                raise ConfigError(f"CJ_KAFKA_SSL_CA_LOCATION={ca!r} is not a readable file")
        return cls(
            protocol,
            mechanism if sasl else "",
            username,
            password,
            ca_location,
            production=deployment == "production",
        )


@dataclass(frozen=True, slots=True)
class CommonSettings:
    log_level: str
    log_format: str
    brokers: str
    topic_partitions: int
    topic_replication: int
    tracing_exporter: str
    tracing_dir: Path | None
    kafka: KafkaSecurity = KafkaSecurity()

    @classmethod
    def from_env(cls, env: Env) -> CommonSettings:
        brokers = env.text("CJ_REDPANDA_BROKERS", DEFAULT_BROKERS)
        for part in brokers.split(","):
            host, _, port = part.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ConfigError(f"CJ_REDPANDA_BROKERS={brokers!r}: {part!r} is not host:port")
        return cls(
            log_level=env.choice(
                "CJ_LOG_LEVEL", "info", ("debug", "info", "warning", "error", "critical")
            ),
            log_format=env.choice("CJ_LOG_FORMAT", "json", ("json", "text")),
            brokers=brokers,
            topic_partitions=env.integer("CJ_TOPIC_PARTITIONS", 3, lo=1, hi=1024),
            topic_replication=env.integer("CJ_TOPIC_REPLICATION", 1, lo=1, hi=16),
            tracing_exporter=env.choice(
                "CJ_TRACING_EXPORTER", "none", ("none", "console", "file", "otlp")
            ),
            tracing_dir=Path(d) if (d := env.text("CJ_TRACING_DIR", "")) else None,
            kafka=KafkaSecurity.from_env(env),
        )


@dataclass(frozen=True, slots=True)
class OutboxSettings:
    worker_count: int
    batch_size: int
    max_retries: int
    poll_interval: float
    linger: float

    @classmethod
    def from_env(cls, env: Env) -> OutboxSettings:
        return cls(
            worker_count=env.integer("CJ_OUTBOX_WORKER_COUNT", 4, lo=1, hi=64),
            batch_size=env.integer("CJ_OUTBOX_BATCH_SIZE", 100, lo=1, hi=10_000),
            max_retries=env.integer("CJ_OUTBOX_MAX_RETRIES", 5, lo=0, hi=1_000_000),
            poll_interval=env.duration("CJ_OUTBOX_POLL_INTERVAL", 5.0, lo=0.01),
            linger=env.duration("CJ_OUTBOX_LINGER", 0.030, lo=0.0),
        )


@dataclass(frozen=True, slots=True)
class IngestionSettings:
    common: CommonSettings
    outbox: OutboxSettings
    database_url: str
    host: str
    port: int
    relay_port: int
    metrics_port: int
    relay_metrics_port: int
    max_payload_bytes: int
    idempotency_retention: float
    run_relay: bool
    group_commit_max_rows: int
    group_commit_flushers: int
    group_commit_max_queued_rows: int
    pool_size: int
    db_timeout: float

    @classmethod
    def from_env(cls, env: Env | None = None) -> IngestionSettings:
        env = env or Env()
        return cls(
            common=CommonSettings.from_env(env),
            outbox=OutboxSettings.from_env(env),
            database_url=env.db_url("CJ_INGESTION_DATABASE_URL"),
            host=env.text("CJ_INGESTION_HOST", "127.0.0.1"),
            port=env.port("CJ_INGESTION_PORT", 50051),
            relay_port=env.port("CJ_RELAY_PORT", 50054),
            metrics_port=env.integer("CJ_INGESTION_METRICS_PORT", 9101, lo=0, hi=65535),
            relay_metrics_port=env.integer("CJ_RELAY_METRICS_PORT", 9102, lo=0, hi=65535),
            max_payload_bytes=env.integer(
                "CJ_INGESTION_MAX_PAYLOAD_BYTES", 64 * 1024, lo=16, hi=4 * 1024 * 1024
            ),
            idempotency_retention=env.duration(
                "CJ_INGESTION_IDEMPOTENCY_RETENTION", 24 * 3600.0, lo=1.0
            ),
            run_relay=env.flag("CJ_INGESTION_RUN_RELAY", True),
            group_commit_max_rows=env.integer(
                "CJ_INGESTION_GROUP_COMMIT_MAX_ROWS", 1000, lo=1, hi=100_000
            ),
            group_commit_flushers=env.integer("CJ_INGESTION_GROUP_COMMIT_FLUSHERS", 1, lo=1, hi=64),
            # Events waiting for a commit before callers are answered UNAVAILABLE; at least
            # one full IngestEvents batch (500).
            group_commit_max_queued_rows=env.integer(
                "CJ_INGESTION_GROUP_COMMIT_MAX_QUEUED_ROWS", 10_000, lo=500, hi=10_000_000
            ),
            pool_size=env.integer("CJ_INGESTION_POOL_SIZE", 8, lo=1, hi=256),
            db_timeout=env.duration("CJ_INGESTION_DB_TIMEOUT", 5.0, lo=0.1),
        )


# --- consumer fetch linger (issue 20, ADR 23) --------------------------------------------
# The most a broker may hold a consumer's fetch: every event waits up to this long on its
# way to that consumer, and a stopping consumer's drain waits twice this.
MAX_FETCH_LINGER = 1.0
# The least one: an unlingered consumer's fetch wait (services/infra/kafka.py FETCH_WAIT). A
# shorter linger would answer every fetch after it, an idle consumer asking the broker more
# often than without one (up to 1,000 times a second at 1 ms).
MIN_FETCH_LINGER = 0.010


def fetch_linger(env: Env, name: str, default: float) -> float:
    """A consumer's fetch linger (services/infra/kafka.py consumer_config): 0 answers
    fetches at once, L > 0 lets the broker gather up to L seconds of events per fetch."""
    value = env.duration(name, default, lo=0.0)
    if value > MAX_FETCH_LINGER:
        raise ConfigError(
            f"{name}={env.text(name, '')!r} is more than {MAX_FETCH_LINGER:g}s: every event "
            "would wait that long for its consumer"
        )
    if 0 < value < MIN_FETCH_LINGER:
        raise ConfigError(
            f"{name}={env.text(name, '')!r} is between 0 and {MIN_FETCH_LINGER * 1000:g}ms: "
            "the broker would answer fetches more often than with no linger (0)"
        )
    return value


@dataclass(frozen=True, slots=True)
class EventHandlerSettings:
    common: CommonSettings
    database_url: str
    host: str
    port: int
    consumer_group: str
    topics: tuple[str, ...]
    poll_timeout: float
    batch_size: int
    metrics_port: int
    # On the send -> projection path (p99 <= 50 ms): fetches are answered at once.
    fetch_linger: float = 0.0

    @classmethod
    def from_env(cls, env: Env | None = None) -> EventHandlerSettings:
        env = env or Env()
        return cls(
            common=CommonSettings.from_env(env),
            database_url=env.db_url("CJ_EVENTHANDLER_DATABASE_URL"),
            host=env.text("CJ_EVENTHANDLER_HOST", "127.0.0.1"),
            port=env.port("CJ_EVENTHANDLER_PORT", 50053),
            consumer_group=env.text("CJ_EVENTHANDLER_CONSUMER_GROUP", "event-handler"),
            topics=env.csv(
                "CJ_EVENTHANDLER_TOPICS", ("sensor-events", "user-actions", "system-events")
            ),
            poll_timeout=env.duration("CJ_EVENTHANDLER_POLL_TIMEOUT", 1.0, lo=0.001),
            batch_size=env.integer("CJ_EVENTHANDLER_BATCH_SIZE", 500, lo=1, hi=100_000),
            metrics_port=env.integer("CJ_EVENTHANDLER_METRICS_PORT", 9103, lo=0, hi=65535),
            fetch_linger=fetch_linger(env, "CJ_EVENTHANDLER_FETCH_LINGER", 0.0),
        )


# --- live streams (issue 19) -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class WatchSettings:
    """WatchService in the query process: each watcher reads the bus with a consumer of its
    own (no group), so the bound on watchers bounds the bus connections and threads."""

    max_watchers: int = 16
    # Streams one token's subject may hold at once (review of issue 19): one read token
    # cannot take every slot. Calls without a subject (--insecure edge) are not capped.
    max_per_subject: int = 4
    # A watcher further behind the bus's end than this many messages is cut off (too slow).
    max_lag: int = 10_000
    # A single message the client has not taken within this long: cut off (too slow).
    send_timeout: float = 10.0
    # A quiet stream sends a heartbeat this often (under Envoy's 300 s stream idle timeout).
    heartbeat: float = 15.0
    # A stream is ended after this long (WatchEnd reason MAX_DURATION; the SDKs reopen it
    # from its position at once), so no stream holds a slot and a bus consumer for ever;
    # 0: no limit.
    max_duration: float = 3600.0
    # WatchProjection follows the event handler's committed offsets (ADR 21): its group,
    # read from the handler's own variable so the two cannot disagree.
    handler_group: str = "event-handler"
    handler_topics: tuple[str, ...] = ("sensor-events", "user-actions", "system-events")
    # Each watcher's bus reader may gather up to this long per fetch. Default 0 (10 ms
    # fetches): with 50 ms, e2e test_watch.py::test_stream_attacks found a closed stream's
    # slot still held after 15 s in one run of five (0 of five at 0); cause not found yet.
    fetch_linger: float = 0.0

    @classmethod
    def from_env(cls, env: Env) -> WatchSettings:
        heartbeat = env.duration("CJ_WATCH_HEARTBEAT", 15.0, lo=0.1)
        if heartbeat >= 300:
            raise ConfigError(
                f"CJ_WATCH_HEARTBEAT={heartbeat:g}s must be under the edge's 300 s stream "
                "idle timeout"
            )
        max_duration = env.duration("CJ_WATCH_MAX_DURATION", 3600.0)
        if 0 < max_duration < 1:
            raise ConfigError(
                f"CJ_WATCH_MAX_DURATION={max_duration:g}s must be 0 (no limit) or at least 1s"
            )
        return cls(
            max_watchers=env.integer("CJ_WATCH_MAX_WATCHERS", 16, lo=0, hi=1000),
            max_per_subject=env.integer("CJ_WATCH_MAX_PER_SUBJECT", 4, lo=1, hi=1000),
            max_lag=env.integer("CJ_WATCH_MAX_LAG", 10_000, lo=1, hi=10_000_000),
            send_timeout=env.duration("CJ_WATCH_SEND_TIMEOUT", 10.0, lo=0.1),
            heartbeat=heartbeat,
            max_duration=max_duration,
            handler_group=env.text("CJ_EVENTHANDLER_CONSUMER_GROUP", "event-handler"),
            handler_topics=env.csv(
                "CJ_EVENTHANDLER_TOPICS", ("sensor-events", "user-actions", "system-events")
            ),
            fetch_linger=fetch_linger(env, "CJ_WATCH_FETCH_LINGER", 0.0),
        )


@dataclass(frozen=True, slots=True)
class QuerySettings:
    common: CommonSettings
    database_url: str
    host: str
    port: int
    pool_size: int
    db_timeout: float
    metrics_port: int
    ingestion_address: str
    eventhandler_address: str
    actions_address: str
    inference_address: str = ""  # issue 18; empty: inference is off
    device_health_window: float = 900.0  # issue 18: anomalous while the last anomaly is this recent
    watch: WatchSettings = WatchSettings()  # issue 19
    # issue 19, the overview's figures (GET /api/v1/stats): how long an answer is reused, and
    # the consumer groups (with their topics) whose lag it shows, named by the owners' settings.
    stats_cache: float = 1.0
    stats_groups: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @classmethod
    def from_env(cls, env: Env | None = None) -> QuerySettings:
        env = env or Env()
        return cls(
            stats_cache=env.duration("CJ_QUERY_STATS_CACHE", 1.0, lo=0.1),
            stats_groups=_stats_groups(env),
            watch=WatchSettings.from_env(env),
            common=CommonSettings.from_env(env),
            database_url=env.db_url("CJ_QUERY_DATABASE_URL"),
            host=env.text("CJ_QUERY_HOST", "127.0.0.1"),
            port=env.port("CJ_QUERY_PORT", 50052),
            pool_size=env.integer("CJ_QUERY_POOL_SIZE", 8, lo=1, hi=256),
            db_timeout=env.duration("CJ_QUERY_DB_TIMEOUT", 5.0, lo=0.1),
            metrics_port=env.integer("CJ_QUERY_METRICS_PORT", 9104, lo=0, hi=65535),
            # Lineage asks the services owning each part, over gRPC.
            ingestion_address=env.text(
                "CJ_QUERY_INGESTION_ADDRESS", f"127.0.0.1:{env.port('CJ_INGESTION_PORT', 50051)}"
            ),
            eventhandler_address=env.text(
                "CJ_QUERY_EVENTHANDLER_ADDRESS",
                f"127.0.0.1:{env.port('CJ_EVENTHANDLER_PORT', 50053)}",
            ),
            actions_address=env.text(
                "CJ_QUERY_ACTIONS_ADDRESS", f"127.0.0.1:{env.port('CJ_ACTIONS_PORT', 50056)}"
            ),
            inference_address=env.text(
                "CJ_QUERY_INFERENCE_ADDRESS",
                f"127.0.0.1:{env.port('CJ_INFERENCE_PORT', 50058)}"
                if env.flag("CJ_FEATURE_INFERENCE", True)
                else "",
            ),
            device_health_window=env.duration("CJ_QUERY_DEVICE_HEALTH_WINDOW", 900.0, lo=1.0),
        )


def _stats_groups(env: Env) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The consumer groups of the stack and their topics, read from the same variables (and
    defaults) their services read; tsdb and inference only when their feature is on."""
    every = ("sensor-events", "user-actions", "system-events")
    groups = [
        (
            env.text("CJ_EVENTHANDLER_CONSUMER_GROUP", "event-handler"),
            env.csv("CJ_EVENTHANDLER_TOPICS", every),
        ),
        (
            env.text("CJ_ACTIONS_CONSUMER_GROUP", "action-orchestrator"),
            env.csv("CJ_ACTIONS_TOPICS", every),
        ),
    ]
    if env.flag("CJ_FEATURE_TSDB", True):
        groups.append(
            (
                env.text("CJ_TSDB_CONSUMER_GROUP", "tsdb-writer"),
                env.csv("CJ_TSDB_TOPICS", ("sensor-events",)),
            )
        )
    if env.flag("CJ_FEATURE_INFERENCE", True):
        groups.append(
            (
                env.text("CJ_INFERENCE_CONSUMER_GROUP", "ai-inference"),
                env.csv("CJ_INFERENCE_TOPICS", ("sensor-events",)),
            )
        )
    return tuple(groups)


# --- inference (issue 18) ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class InferenceSettings:
    common: CommonSettings
    enabled: bool
    database_url: str
    host: str
    port: int
    metrics_port: int
    consumer_group: str
    topics: tuple[str, ...]
    poll_timeout: float
    batch_size: int
    warmup: int
    threshold: float
    ingestion_address: str
    ingest_timeout: float
    max_metrics: int  # models per device; further metric names are left out and counted
    model_cache: int  # model rows kept between batches (0: off); PostgreSQL stays the truth
    # Source accepted -> ai.anomaly stored p99 <= 250 ms leaves room for a short linger.
    fetch_linger: float = 0.05

    @classmethod
    def from_env(cls, env: Env | None = None) -> InferenceSettings:
        env = env or Env()
        raw = env.text("CJ_INFERENCE_THRESHOLD", "0.5")
        try:
            threshold = float(raw)
        except ValueError:
            raise ConfigError(f"CJ_INFERENCE_THRESHOLD={raw!r} is not a number") from None
        if not 0.0 < threshold < 1.0:
            raise ConfigError(f"CJ_INFERENCE_THRESHOLD={raw!r} must be between 0 and 1")
        return cls(
            common=CommonSettings.from_env(env),
            enabled=env.flag("CJ_FEATURE_INFERENCE", True),
            database_url=env.db_url("CJ_INFERENCE_DATABASE_URL"),
            host=env.text("CJ_INFERENCE_HOST", "127.0.0.1"),
            port=env.port("CJ_INFERENCE_PORT", 50058),
            metrics_port=env.integer("CJ_INFERENCE_METRICS_PORT", 9108, lo=0, hi=65535),
            consumer_group=env.text("CJ_INFERENCE_CONSUMER_GROUP", "ai-inference"),
            topics=env.csv("CJ_INFERENCE_TOPICS", ("sensor-events",)),
            poll_timeout=env.duration("CJ_INFERENCE_POLL_TIMEOUT", 1.0, lo=0.001),
            batch_size=env.integer("CJ_INFERENCE_BATCH_SIZE", 5000, lo=1, hi=100_000),
            # Readings a model learns before it may raise an anomaly (two days of 5-minute
            # readings: one to learn the daily cycle, one to check it).
            warmup=env.integer("CJ_INFERENCE_WARMUP", 576, lo=1, hi=10_000_000),
            threshold=threshold,
            ingestion_address=env.text(
                "CJ_INFERENCE_INGESTION_ADDRESS",
                f"127.0.0.1:{env.port('CJ_INGESTION_PORT', 50051)}",
            ),
            ingest_timeout=env.duration("CJ_INFERENCE_INGEST_TIMEOUT", 5.0, lo=0.1),
            max_metrics=env.integer("CJ_INFERENCE_MAX_METRICS", 32, lo=1, hi=10_000),
            # About 3 KB each (docs/inference.md, Memory): 20,000 models ~ 60 MB.
            model_cache=env.integer("CJ_INFERENCE_MODEL_CACHE", 20_000, lo=0, hi=10_000_000),
            fetch_linger=fetch_linger(env, "CJ_INFERENCE_FETCH_LINGER", 0.05),
        )


# --- time series (issue 17) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TsdbSettings:
    """The time-series writer and its series API (services/tsdb, docs/tsdb.md)."""

    common: CommonSettings
    database_url: str
    host: str
    port: int
    metrics_port: int
    consumer_group: str
    topics: tuple[str, ...]
    poll_timeout: float
    batch_size: int
    pool_size: int
    db_timeout: float
    # Raw points older than this are dropped with their daily partition (and not written).
    retention: float
    # Minute and hour rollups and the latest values: at least as long as the points.
    rollup_retention: float
    retention_interval: float
    partitions_ahead: int
    # The most buckets one series answer may hold.
    max_points: int
    # The writer's and upkeep's sessions: a lock wait / statement longer than this is a
    # transient failure (retried), never an endless wait behind another session.
    lock_timeout: float = 1.0
    statement_timeout: float = 30.0
    # The event types whose numeric payload fields become points.
    event_types: tuple[str, ...] = ("sensor.reading",)
    # Points need no hurry: batches of up to 250 ms, one transaction each.
    fetch_linger: float = 0.25

    @classmethod
    def from_env(cls, env: Env | None = None) -> TsdbSettings:
        env = env or Env()
        retention = env.duration("CJ_TSDB_RETENTION", 7 * 86400.0, lo=86400.0)
        rollups = env.duration("CJ_TSDB_ROLLUP_RETENTION", 90 * 86400.0, lo=86400.0)
        if rollups < retention:
            raise ConfigError(
                f"CJ_TSDB_ROLLUP_RETENTION={env.text('CJ_TSDB_ROLLUP_RETENTION', '')!r} is "
                f"shorter than CJ_TSDB_RETENTION ({retention:.0f}s): rollups are made from points"
            )
        return cls(
            common=CommonSettings.from_env(env),
            database_url=env.db_url("CJ_TSDB_DATABASE_URL"),
            host=env.text("CJ_TSDB_HOST", "127.0.0.1"),
            port=env.port("CJ_TSDB_PORT", 50057),
            metrics_port=env.integer("CJ_TSDB_METRICS_PORT", 9107, lo=0, hi=65535),
            consumer_group=env.text("CJ_TSDB_CONSUMER_GROUP", "tsdb-writer"),
            topics=env.csv("CJ_TSDB_TOPICS", ("sensor-events",)),
            poll_timeout=env.duration("CJ_TSDB_POLL_TIMEOUT", 1.0, lo=0.001),
            batch_size=env.integer("CJ_TSDB_BATCH_SIZE", 1000, lo=1, hi=100_000),
            pool_size=env.integer("CJ_TSDB_POOL_SIZE", 8, lo=1, hi=256),
            db_timeout=env.duration("CJ_TSDB_DB_TIMEOUT", 5.0, lo=0.1),
            retention=retention,
            rollup_retention=rollups,
            retention_interval=env.duration("CJ_TSDB_RETENTION_INTERVAL", 3600.0, lo=1.0),
            partitions_ahead=env.integer("CJ_TSDB_PARTITIONS_AHEAD", 2, lo=1, hi=60),
            max_points=env.integer("CJ_TSDB_MAX_POINTS", 10_000, lo=10, hi=1_000_000),
            lock_timeout=env.duration("CJ_TSDB_LOCK_TIMEOUT", 1.0, lo=0.01),
            statement_timeout=env.duration("CJ_TSDB_STATEMENT_TIMEOUT", 30.0, lo=0.1),
            event_types=env.csv("CJ_TSDB_EVENT_TYPES", ("sensor.reading",)),
            fetch_linger=fetch_linger(env, "CJ_TSDB_FETCH_LINGER", 0.25),
        )


def _forbid_in_production(env: Env, name: str, value: str, why: str) -> None:
    """An insecure switch is for local experiments: under CJ_ENVIRONMENT=production it stops
    the process, naming the variable."""
    deployment = env.choice("CJ_ENVIRONMENT", "development", ("development", "test", "production"))
    if deployment == "production":
        raise ConfigError(f"{name}={value} is refused with CJ_ENVIRONMENT=production: {why}")


@dataclass(frozen=True, slots=True)
class ActionsSettings:
    """The action orchestrator: API, consumer and the webhook delivery policy (DESIGN 5)."""

    common: CommonSettings
    database_url: str
    host: str
    port: int
    metrics_port: int
    consumer_group: str
    topics: tuple[str, ...]
    poll_timeout: float
    batch_size: int
    pool_size: int
    db_timeout: float
    workers: int
    endpoint_concurrency: int
    poll_interval: float
    timeout: float
    backoff: tuple[float, ...]
    backoff_jitter: float
    retry_after_max: float
    rate_limit_per_minute: int
    dedupe_window: float
    breaker_threshold: int
    breaker_cooldown: float
    max_job_age: float
    retention: float
    block_private_targets: bool
    # Intended internal targets, allowed although private: host names, addresses, CIDRs.
    allowed_targets: tuple[str, ...] = ()
    # The AES-GCM key of the signing secrets at rest: base64 text, or a file of such lines.
    secrets_key: str = ""
    secrets_key_file: Path | None = None
    # Webhooks need no 10 ms fetches: up to 0.1 s more per delivery.
    fetch_linger: float = 0.1

    @classmethod
    def from_env(cls, env: Env | None = None) -> ActionsSettings:
        env = env or Env()
        block_private = env.flag("CJ_ACTIONS_BLOCK_PRIVATE_TARGETS", True)
        if not block_private:
            _forbid_in_production(
                env,
                "CJ_ACTIONS_BLOCK_PRIVATE_TARGETS",
                "false",
                "webhooks could reach internal addresses (allow intended ones with "
                "CJ_ACTIONS_ALLOWED_TARGETS)",
            )
        backoff_raw = env.csv("CJ_ACTIONS_BACKOFF", ("1s", "2s", "4s", "8s", "16s"))
        backoff = tuple(_parse_duration("CJ_ACTIONS_BACKOFF", part, lo=0.0) for part in backoff_raw)
        jitter_raw = env.text("CJ_ACTIONS_BACKOFF_JITTER", "0.2")
        try:
            jitter = float(jitter_raw)
        except ValueError:
            raise ConfigError(f"CJ_ACTIONS_BACKOFF_JITTER={jitter_raw!r} is not a number") from None
        if not 0.0 <= jitter <= 1.0:
            raise ConfigError(f"CJ_ACTIONS_BACKOFF_JITTER={jitter_raw!r} is out of range 0..1")
        return cls(
            common=CommonSettings.from_env(env),
            database_url=env.db_url("CJ_ACTIONS_DATABASE_URL"),
            host=env.text("CJ_ACTIONS_HOST", "127.0.0.1"),
            port=env.port("CJ_ACTIONS_PORT", 50056),
            metrics_port=env.integer("CJ_ACTIONS_METRICS_PORT", 9106, lo=0, hi=65535),
            consumer_group=env.text("CJ_ACTIONS_CONSUMER_GROUP", "action-orchestrator"),
            topics=env.csv("CJ_ACTIONS_TOPICS", ("sensor-events", "user-actions", "system-events")),
            poll_timeout=env.duration("CJ_ACTIONS_POLL_TIMEOUT", 1.0, lo=0.001),
            batch_size=env.integer("CJ_ACTIONS_BATCH_SIZE", 500, lo=1, hi=100_000),
            pool_size=env.integer("CJ_ACTIONS_POOL_SIZE", 8, lo=1, hi=256),
            db_timeout=env.duration("CJ_ACTIONS_DB_TIMEOUT", 5.0, lo=0.1),
            workers=env.integer("CJ_ACTIONS_WORKERS", 16, lo=1, hi=1024),
            endpoint_concurrency=env.integer("CJ_ACTIONS_ENDPOINT_CONCURRENCY", 4, lo=1, hi=1024),
            poll_interval=env.duration("CJ_ACTIONS_POLL_INTERVAL", 1.0, lo=0.01),
            timeout=env.duration("CJ_ACTIONS_TIMEOUT", 30.0, lo=0.05),
            backoff=backoff,
            backoff_jitter=jitter,
            retry_after_max=env.duration("CJ_ACTIONS_RETRY_AFTER_MAX", 3600.0, lo=0.0),
            rate_limit_per_minute=env.integer(
                "CJ_ACTIONS_RATE_LIMIT_PER_MINUTE", 10, lo=0, hi=10_000_000
            ),
            dedupe_window=env.duration("CJ_ACTIONS_DEDUPE_WINDOW", 300.0, lo=0.0),
            breaker_threshold=env.integer("CJ_ACTIONS_BREAKER_THRESHOLD", 5, lo=1, hi=1_000_000),
            breaker_cooldown=env.duration("CJ_ACTIONS_BREAKER_COOLDOWN", 300.0, lo=0.0),
            max_job_age=env.duration("CJ_ACTIONS_MAX_JOB_AGE", 24 * 3600.0, lo=1.0),
            retention=env.duration("CJ_ACTIONS_RETENTION", 7 * 24 * 3600.0, lo=60.0),
            block_private_targets=block_private,
            allowed_targets=_allowed_targets(env.csv("CJ_ACTIONS_ALLOWED_TARGETS", ())),
            secrets_key=env.text("CJ_ACTIONS_SECRETS_KEY", ""),
            secrets_key_file=Path(f)
            if (f := env.text("CJ_ACTIONS_SECRETS_KEY_FILE", ""))
            else None,
            fetch_linger=fetch_linger(env, "CJ_ACTIONS_FETCH_LINGER", 0.1),
        )


_HOST_NAME_RE = re.compile(
    r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z_][a-z0-9_-]*\.?$"
)


def _allowed_targets(entries: tuple[str, ...]) -> tuple[str, ...]:
    """CJ_ACTIONS_ALLOWED_TARGETS: each a host name, an address or a CIDR (IPv6 may be
    bracketed); anything else fails fast naming it."""
    out = []
    for raw in entries:
        entry = raw.strip().lower()
        bare = entry[1:-1] if entry.startswith("[") and entry.endswith("]") else entry
        try:
            ipaddress.ip_network(bare, strict=False)
        except ValueError:
            if not _HOST_NAME_RE.match(entry):
                raise ConfigError(
                    f"CJ_ACTIONS_ALLOWED_TARGETS: {raw!r} is not a host name, an address or "
                    "a CIDR (like hooks.internal, 10.1.2.3 or 10.1.0.0/16)"
                ) from None
        out.append(bare)
    return tuple(out)


def _parse_duration(name: str, raw: str, *, lo: float) -> float:
    m = _DURATION_RE.match(raw.strip())
    if not m:
        raise ConfigError(f"{name}: {raw!r} is not a duration like 5s, 250ms, 1m or 24h")
    value = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    if value < lo:
        raise ConfigError(f"{name}: {raw!r} must be at least {lo}s")
    return value


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """The MQTT entry point: an amqtt broker whose publishes feed ingestion over gRPC."""

    common: CommonSettings
    host: str
    port: int
    health_port: int
    metrics_port: int
    ingestion_address: str
    users_file: Path | None
    users_toml: str
    allow_anonymous: bool
    max_connections: int
    max_inflight: int
    max_message_bytes: int
    max_batch_events: int
    ingest_timeout: float
    shutdown_grace: float
    max_pending: int  # connections not yet past CONNECT
    connect_timeout: float
    login_failures: int  # failed logins per address and minute before logins are refused
    plain: bool  # the plain-text listener on `port`
    tls_port: int
    tls_cert_file: Path | None  # with tls_key_file: a TLS listener on tls_port
    tls_key_file: Path | None
    jwks_file: Path | None  # platform tokens as passwords, verified against these keys
    token_issuer: str
    token_audience: str
    token_leeway: int

    @property
    def max_packet_bytes(self) -> int:
        """Largest MQTT packet read at all: a largest body plus a topic of 64 KiB."""
        return self.max_message_bytes + 65_600

    @classmethod
    def from_env(cls, env: Env | None = None) -> MqttSettings:
        env = env or Env()
        deployment = env.choice(
            "CJ_ENVIRONMENT", "development", ("development", "test", "production")
        )
        users = env.text("CJ_MQTT_USERS_FILE", "")
        users_file = Path(users).expanduser() if users else None
        if users_file is not None and not users_file.is_file():
            raise ConfigError(f"CJ_MQTT_USERS_FILE={users!r} is not a readable file")
        # The same TOML as a variable: how container platforms hand over a secret.
        users_toml = env.text("CJ_MQTT_USERS", "")
        if users_file is not None and users_toml:
            raise ConfigError("set CJ_MQTT_USERS_FILE or CJ_MQTT_USERS, not both")
        # Anonymous devices only when asked for, in any environment.
        allow_anonymous = env.flag("CJ_MQTT_ALLOW_ANONYMOUS", False)
        if allow_anonymous:
            _forbid_in_production(
                env, "CJ_MQTT_ALLOW_ANONYMOUS", "true", "any client could publish events"
            )
        jwks = env.text("CJ_MQTT_JWKS_FILE", "")
        jwks_file = Path(jwks).expanduser() if jwks else None
        if jwks_file is not None and not jwks_file.is_file():
            raise ConfigError(f"CJ_MQTT_JWKS_FILE={jwks!r} is not a readable file")
        if users_file is None and not users_toml and not allow_anonymous and jwks_file is None:
            raise ConfigError(
                "CJ_MQTT_USERS_FILE (or CJ_MQTT_USERS) is required when anonymous MQTT access "
                f"is off (CJ_ENVIRONMENT={deployment}); create one with `cornjacket mqtt add-user`"
                " (or accept platform tokens with CJ_MQTT_JWKS_FILE)"
            )
        cert, key = env.text("CJ_MQTT_TLS_CERT_FILE", ""), env.text("CJ_MQTT_TLS_KEY_FILE", "")
        if bool(cert) != bool(key):
            raise ConfigError("set both CJ_MQTT_TLS_CERT_FILE and CJ_MQTT_TLS_KEY_FILE, or neither")
        for name, value in (("CJ_MQTT_TLS_CERT_FILE", cert), ("CJ_MQTT_TLS_KEY_FILE", key)):
            if value and not Path(value).expanduser().is_file():
                raise ConfigError(f"{name}={value!r} is not a readable file")
        # With TLS, plain text only when asked for (a local experiment beside it).
        plain = env.flag("CJ_MQTT_PLAIN", not cert)
        if not plain and not cert:
            raise ConfigError("CJ_MQTT_PLAIN=false needs a TLS listener (CJ_MQTT_TLS_CERT_FILE)")
        auth = AuthSettings.from_env(env)
        return cls(
            common=CommonSettings.from_env(env),
            host=env.text("CJ_MQTT_HOST", "127.0.0.1"),
            port=env.port("CJ_MQTT_PORT", 1883),
            health_port=env.port("CJ_MQTT_HEALTH_PORT", 50055),
            metrics_port=env.integer("CJ_MQTT_METRICS_PORT", 9105, lo=0, hi=65535),
            ingestion_address=env.text(
                "CJ_MQTT_INGESTION_ADDRESS",
                f"127.0.0.1:{env.port('CJ_INGESTION_PORT', 50051)}",
            ),
            users_file=users_file,
            users_toml=users_toml,
            allow_anonymous=allow_anonymous,
            max_connections=env.integer("CJ_MQTT_MAX_CONNECTIONS", 1000, lo=1, hi=1_000_000),
            max_inflight=env.integer("CJ_MQTT_MAX_INFLIGHT", 5000, lo=1, hi=1_000_000),
            max_message_bytes=env.integer(
                "CJ_MQTT_MAX_MESSAGE_BYTES", 256 * 1024, lo=64, hi=16 * 1024 * 1024
            ),
            max_batch_events=env.integer("CJ_MQTT_MAX_BATCH_EVENTS", 500, lo=1, hi=500),
            ingest_timeout=env.duration("CJ_MQTT_INGEST_TIMEOUT", 10.0, lo=0.1),
            shutdown_grace=env.duration("CJ_MQTT_SHUTDOWN_GRACE", 10.0, lo=0.0),
            max_pending=env.integer("CJ_MQTT_MAX_PENDING", 100, lo=1, hi=1_000_000),
            connect_timeout=env.duration("CJ_MQTT_CONNECT_TIMEOUT", 10.0, lo=0.1),
            login_failures=env.integer("CJ_MQTT_LOGIN_FAILURES", 10, lo=1, hi=1_000_000),
            plain=plain,
            tls_port=env.port("CJ_MQTT_TLS_PORT", 8883),
            tls_cert_file=Path(cert).expanduser() if cert else None,
            tls_key_file=Path(key).expanduser() if key else None,
            jwks_file=jwks_file,
            token_issuer=auth.issuer,
            token_audience=auth.audience,
            token_leeway=auth.clock_skew,
        )


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Bearer JWTs verified by Envoy at the edge (docs/decisions/0015-edge-authentication.md).

    The keys come from a JWKS: a local file (``cornjacket up`` makes one under
    ``$CJ_DATA_DIR/auth/`` when neither source is set) or a remote URI (production). With
    ``insecure`` Envoy verifies nothing: a development convenience that /health announces.
    """

    insecure: bool
    issuer: str
    audience: str
    clock_skew: int  # seconds of leeway on exp/nbf
    jwks_file: Path | None
    jwks_uri: str
    jwks_cache: float  # seconds a remote JWKS is kept before it is fetched again

    @classmethod
    def from_env(cls, env: Env | None = None) -> AuthSettings:
        env = env or Env()
        jwks_file_raw = env.text("CJ_AUTH_JWKS_FILE", "")
        jwks_uri = env.text("CJ_AUTH_JWKS_URI", "")
        if jwks_file_raw and jwks_uri:
            raise ConfigError("set CJ_AUTH_JWKS_FILE or CJ_AUTH_JWKS_URI, not both")
        if jwks_uri and not _JWKS_URI_RE.match(jwks_uri):
            raise ConfigError(
                f"CJ_AUTH_JWKS_URI={jwks_uri!r} is not an https://host[:port]/path URL "
                "(plain http only for 127.0.0.1 or localhost)"
            )
        jwks_file = Path(jwks_file_raw).expanduser().resolve() if jwks_file_raw else None
        issuer = env.text("CJ_AUTH_ISSUER", "cornjacket-local")
        audience = env.text("CJ_AUTH_AUDIENCE", "cornjacket")
        for name, value in (("CJ_AUTH_ISSUER", issuer), ("CJ_AUTH_AUDIENCE", audience)):
            if not _CLAIM_RE.match(value):
                raise ConfigError(f"{name}={value!r} must be printable, without quotes or spaces")
        skew = env.duration("CJ_AUTH_CLOCK_SKEW", 30.0, lo=0.0)
        if skew > 600 or skew != int(skew):
            raise ConfigError(f"CJ_AUTH_CLOCK_SKEW={skew:g}s must be whole seconds, at most 600s")
        insecure = env.flag("CJ_AUTH_INSECURE", False)
        if insecure:
            _forbid_in_production(
                env, "CJ_AUTH_INSECURE", "true", "anyone reaching the edge could do anything"
            )
        return cls(
            insecure=insecure,
            issuer=issuer,
            audience=audience,
            clock_skew=int(skew),
            jwks_file=jwks_file,
            jwks_uri=jwks_uri,
            jwks_cache=env.duration("CJ_AUTH_JWKS_CACHE", 300.0, lo=1.0),
        )


_JWKS_URI_RE = re.compile(
    r"^(https://[A-Za-z0-9.-]+(:\d{1,5})?|http://(127\.0\.0\.1|localhost)(:\d{1,5})?)/\S*$"
)
_CLAIM_RE = re.compile(r"^[!#-~]+$")  # printable ASCII, no space and no double quote


LOCAL_EDGE_HOSTS = ("127.0.0.1", "localhost", "[::1]")


@dataclass(frozen=True, slots=True)
class RateBudget:
    """A token bucket per client: ``rate`` requests a second on average, ``burst`` at once
    (0 = no limit)."""

    rate: int
    burst: int


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    """Envoy's protections at the edge (docs/decisions/0015-edge-authentication.md, "Edge
    hardening"): per-client rate budgets, the host names it answers, proxies it trusts and
    the overload manager's bounds."""

    ingest: RateBudget = RateBudget(20_000, 40_000)
    read: RateBudget = RateBudget(10_000, 20_000)
    admin: RateBudget = RateBudget(1_000, 2_000)
    # Host header names (any port) the edge answers; others get 421 (DNS rebinding of a web
    # page onto a local stack). "*" answers every name (behind a proxy that checks it).
    hosts: tuple[str, ...] = LOCAL_EDGE_HOSTS
    # Proxies in front of Envoy whose X-Forwarded-For entries are believed (0 = the TCP peer
    # is the client).
    trusted_hops: int = 0
    max_heap_mb: int = 1024
    max_connections: int = 10_000

    @classmethod
    def from_env(cls, env: Env | None = None) -> EdgeSettings:
        env = env or Env()
        budgets = {}
        for name, (rate, burst) in (
            ("INGEST", (20_000, 40_000)),
            ("READ", (10_000, 20_000)),
            ("ADMIN", (1_000, 2_000)),
        ):
            r = env.integer(f"CJ_EDGE_{name}_RATE", rate, lo=0, hi=1_000_000)
            b = env.integer(f"CJ_EDGE_{name}_BURST", max(burst, r), lo=0, hi=10_000_000)
            if r and b < r:
                raise ConfigError(f"CJ_EDGE_{name}_BURST={b} is below CJ_EDGE_{name}_RATE={r}")
            budgets[name] = RateBudget(r, b)
        hosts = env.csv("CJ_EDGE_HOSTS", LOCAL_EDGE_HOSTS)
        for host in hosts:
            if not _EDGE_HOST_RE.match(host):
                raise ConfigError(
                    f"CJ_EDGE_HOSTS: {host!r} is not a host name, an IP address, [IPv6], "
                    "*.domain or *"
                )
        if "*" in hosts:
            _forbid_in_production(
                env,
                "CJ_EDGE_HOSTS",
                ",".join(hosts),
                "'*' answers every Host name (name the hosts the edge serves)",
            )
        return cls(
            ingest=budgets["INGEST"],
            read=budgets["READ"],
            admin=budgets["ADMIN"],
            hosts=tuple(h.lower() for h in hosts),
            trusted_hops=env.integer("CJ_EDGE_TRUSTED_HOPS", 0, lo=0, hi=10),
            max_heap_mb=env.integer("CJ_EDGE_MAX_HEAP_MB", 1024, lo=64, hi=1_048_576),
            max_connections=env.integer("CJ_EDGE_MAX_CONNECTIONS", 10_000, lo=1, hi=1_000_000),
        )


_EDGE_HOST_RE = re.compile(
    r"^(\*|(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])$"
)


# Default Prometheus ports per process (CJ_<NAME>_METRICS_PORT; 0 turns one off).
METRICS_PORTS = {
    "ingestion": 9101,
    "relay": 9102,
    "eventhandler": 9103,
    "query": 9104,
    "mqtt": 9105,
    "actions": 9106,
    "tsdb": 9107,
    "inference": 9108,  # issue 18
}


# The services `cornjacket up --replicas` / CJ_REPLICAS can run several processes of, and
# the most of each (two cores do not gain from more; each process holds pools and clients).
REPLICA_SERVICES = (
    "ingestion",
    "relay",
    "eventhandler",
    "query",
    "mqtt",
    "actions",
    "tsdb",
    "inference",
)
MAX_REPLICAS = 8


def parse_replicas(text: str, source: str = "--replicas") -> dict[str, int]:
    """``relay=2,ingestion=2`` -> {"relay": 2, "ingestion": 2}; services not named run once.
    Every mistake names ``source``, the item and what is accepted."""
    counts: dict[str, int] = {}
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        name, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not name or not value:
            raise ConfigError(f"{source}: {item!r} is not SERVICE=N (e.g. relay=2,ingestion=2)")
        if name not in REPLICA_SERVICES:
            raise ConfigError(
                f"{source}: unknown service {name!r}; one of {', '.join(REPLICA_SERVICES)}"
            )
        if name in counts:
            raise ConfigError(f"{source}: {name} is named twice")
        if not value.isdigit() or not 1 <= int(value) <= MAX_REPLICAS:
            raise ConfigError(
                f"{source}: {name}={value!r}: the number of replicas must be 1..{MAX_REPLICAS}"
            )
        counts[name] = int(value)
    return counts


@dataclass(frozen=True, slots=True)
class StackSettings:
    """What ``cornjacket up`` runs locally: embedded PostgreSQL, broker, Envoy, services."""

    data_dir: Path
    edge_port: int
    envoy_admin_port: int
    postgres_port: int
    broker_port: int
    ingestion_port: int
    query_port: int
    eventhandler_port: int
    relay_port: int
    actions_port: int
    mqtt_port: int
    mqtt_health_port: int
    metrics_ports: dict[str, int]
    envoy_concurrency: int
    start_timeout: float
    broker_log: str
    # The embedded broker keeps every message in memory: past this RSS `cornjacket up` swaps
    # it for an empty one once consumers have read everything (0 = never).
    broker_max_rss_mb: int
    auth: AuthSettings
    edge: EdgeSettings = EdgeSettings()
    # The bearer token the operator commands (dlq, trace, bench --edge) send to the edge;
    # empty = the local admin token ($CJ_DATA_DIR/admin.token).
    token: str = ""
    # Processes per service (CJ_REPLICAS / `up --replicas`); a service not named runs once.
    replicas: dict[str, int] = field(default_factory=dict)

    def replica_count(self, service: str) -> int:
        return self.replicas.get(service, 1)

    # Time series (issue 17): CJ_FEATURE_TSDB runs the writer and its series API.
    tsdb_port: int = 50057
    feature_tsdb: bool = True
    # Anomaly detection (issue 18): CJ_FEATURE_INFERENCE runs the inference service.
    inference_port: int = 50058
    feature_inference: bool = True

    @classmethod
    def from_env(cls, env: Env | None = None) -> StackSettings:
        env = env or Env()
        return cls(
            data_dir=Path(env.text("CJ_DATA_DIR", ".cornjacket")).resolve(),
            edge_port=env.port("CJ_EDGE_PORT", 8080),
            envoy_admin_port=env.port("CJ_ENVOY_ADMIN_PORT", 9901),
            postgres_port=env.port("CJ_POSTGRES_PORT", 55432),
            broker_port=env.port("CJ_BROKER_PORT", 9092),
            ingestion_port=env.port("CJ_INGESTION_PORT", 50051),
            query_port=env.port("CJ_QUERY_PORT", 50052),
            eventhandler_port=env.port("CJ_EVENTHANDLER_PORT", 50053),
            relay_port=env.port("CJ_RELAY_PORT", 50054),
            actions_port=env.port("CJ_ACTIONS_PORT", 50056),
            mqtt_port=env.port("CJ_MQTT_PORT", 1883),
            mqtt_health_port=env.port("CJ_MQTT_HEALTH_PORT", 50055),
            metrics_ports={
                name: env.integer(f"CJ_{name.upper()}_METRICS_PORT", port, lo=0, hi=65535)
                for name, port in METRICS_PORTS.items()
            },
            envoy_concurrency=env.integer("CJ_ENVOY_CONCURRENCY", 1, lo=1, hi=64),
            start_timeout=env.duration("CJ_START_TIMEOUT", 60.0, lo=1.0),
            broker_log=env.choice(
                "CJ_BROKER_LOG", "warn", ("error", "warn", "info", "debug", "trace")
            ),
            broker_max_rss_mb=env.integer("CJ_BROKER_MAX_RSS_MB", 256, lo=0, hi=1_048_576),
            auth=AuthSettings.from_env(env),
            edge=EdgeSettings.from_env(env),
            token=env.text("CJ_TOKEN", ""),
            replicas=parse_replicas(env.text("CJ_REPLICAS", ""), "CJ_REPLICAS"),
            tsdb_port=env.port("CJ_TSDB_PORT", 50057),
            feature_tsdb=env.flag("CJ_FEATURE_TSDB", True),
            inference_port=env.port("CJ_INFERENCE_PORT", 50058),
            feature_inference=env.flag("CJ_FEATURE_INFERENCE", True),
        )
