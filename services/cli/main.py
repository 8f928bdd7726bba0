"""The ``cornjacket`` command: run the whole local stack, or one service."""

from __future__ import annotations

import argparse
import base64
import os
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from services.config.settings import (
    ActionsSettings,
    AuthSettings,
    CommonSettings,
    EdgeSettings,
    Env,
    EventHandlerSettings,
    IngestionSettings,
    MqttSettings,
    QuerySettings,
    StackSettings,
    parse_replicas,
)
from services.core.errors import ConfigError, CornjacketError
from services.eventhandler.projectors import PROJECTION_TYPES
from services.infra import logs

if TYPE_CHECKING:
    from services.cli.stack import Stack

SERVE_CHOICES = (
    "ingestion",
    "relay",
    "eventhandler",
    "query",
    "mqtt",
    "actions",
    "tsdb",
    "inference",
)


def _serve(service: str) -> int:
    common = CommonSettings.from_env(Env())
    logs.setup(service, level=common.log_level, fmt=common.log_format)
    from services.infra import tracing

    tracing.setup(service, common.tracing_exporter, common.tracing_dir)
    from services.infra.runtime import freeze_heap, run

    if service in ("ingestion", "relay"):
        from services.ingestion import main as ingestion

        settings = IngestionSettings.from_env()
        if service == "relay":
            return run(lambda: ingestion.run(settings, api=False, relay=True))
        return run(lambda: ingestion.run(settings, relay=settings.run_relay))
    if service == "actions":
        from services.actions import main as actions

        acts = ActionsSettings.from_env()
        return run(lambda: actions.run(acts))
    if service == "tsdb":  # time series (issue 17)
        from services.config.settings import TsdbSettings
        from services.tsdb import main as tsdb

        ts = TsdbSettings.from_env()
        return run(lambda: tsdb.run(ts))
    if service == "mqtt":
        from services.mqtt import main as mqtt

        ms = MqttSettings.from_env()
        return run(lambda: mqtt.run(ms))
    if service == "inference":  # issue 18
        from services.config.settings import InferenceSettings
        from services.inference import main as inference

        try:
            inference.run(InferenceSettings.from_env())
        except CornjacketError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0
    if service == "query":
        from services.query import main as query

        qs = QuerySettings.from_env()
        return run(lambda: query.run(qs))
    from services.eventhandler import main as eventhandler

    freeze_heap()
    try:
        eventhandler.run(EventHandlerSettings.from_env())
    except CornjacketError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def _up(insecure: bool, replicas: dict[str, int] | None = None) -> int:
    import dataclasses

    from services.cli import control
    from services.cli.stack import Stack
    from services.cli.supervisor import Supervisor

    # What the stack writes (data, logs, keys, tokens) is its user's only.
    os.umask(0o077)
    settings = StackSettings.from_env()
    if insecure:
        settings = dataclasses.replace(
            settings, auth=dataclasses.replace(settings.auth, insecure=True)
        )
    if replicas:  # --replicas adds to (and overrides) CJ_REPLICAS
        settings = dataclasses.replace(settings, replicas={**settings.replicas, **replicas})
    stack = Stack(settings, say=lambda m: print(f"cornjacket: {m}", flush=True))
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = 0
    supervisor = Supervisor(
        stack,
        requests=lambda: control.take_requests(settings.data_dir),
        broker_max_rss_mb=settings.broker_max_rss_mb,
    )
    running = control.supervisor_pid(settings.data_dir)
    if running is not None:
        print(
            f"cornjacket: error: another `cornjacket up` is running on {settings.data_dir} "
            f"(pid {running})",
            file=sys.stderr,
        )
        return 1
    control.mark_running(settings.data_dir)
    try:
        stack.start()
        print(
            "\nCornjacket is up:\n"
            + stack.endpoints()
            + "\n\n"
            + _auth_banner(stack)
            + "\n\nPress Ctrl-C to stop.",
            flush=True,
        )
        if not supervisor.run(stopping):
            code = 1
    except CornjacketError as e:
        print(f"cornjacket: error: {e}", file=sys.stderr, flush=True)
        code = 1
    finally:
        print("cornjacket: stopping ...", flush=True)
        stack.stop()
        control.mark_stopped(settings.data_dir)
        print("cornjacket: stopped", flush=True)
    return code


def _auth_banner(stack: Stack) -> str:
    from services.cli.auth import SCOPES, admin_token_path

    auth = stack.settings.auth
    if auth.insecure:
        line = "!" * 78
        return (
            f"{line}\n!! AUTHENTICATION IS OFF (--insecure / CJ_AUTH_INSECURE=true): anyone who"
            f"\n!! reaches {stack.edge_url} can ingest, read and change everything.\n{line}"
        )
    if not stack.admin_token:
        source = auth.jwks_uri or str(auth.jwks_file)
        return (
            f"Authentication: bearer tokens of issuer {auth.issuer!r}, audience "
            f"{auth.audience!r}, keys from {source}"
        )
    path = admin_token_path(stack.settings.data_dir)
    return (
        f"Development admin token (scopes {' '.join(SCOPES)}; also in {path}, "
        "`cornjacket token` prints it):\n"
        f"  {stack.admin_token}\n"
        f'  e.g. curl -H "Authorization: Bearer $(cat {path})" {stack.edge_url}/api/v1/rules'
    )


def _token(args: argparse.Namespace) -> int:
    """Print the development admin token, sign a token, or add a signing key."""
    from services.cli import auth as local_auth

    settings = StackSettings.from_env()
    if settings.auth.jwks_uri or settings.auth.jwks_file is not None:
        print(
            "cornjacket: error: Envoy trusts keys from "
            f"{settings.auth.jwks_uri or settings.auth.jwks_file} (CJ_AUTH_JWKS_*); get tokens "
            "from that issuer, not from the local key",
            file=sys.stderr,
        )
        return 1
    store = local_auth.key_store(settings.data_dir)
    if args.token_command == "rotate-key":  # nosec B105
        key = store.rotate()
        print(
            f"new signing key {key.kid}; {len(store.signing_keys())} key(s) in {store.jwks_path}. "
            "Restart `cornjacket up` so Envoy loads them; tokens of the older keys keep "
            "working until they expire (delete an old key file under "
            f"{store.keys_dir} to revoke them all)."
        )
        return 0
    if args.token_command == "create":  # nosec B105
        scopes = local_auth.parse_scopes(args.scope)
        print(
            store.sign(settings.auth, subject=args.subject, scopes=scopes, ttl=args.ttl),
            flush=True,
        )
        return 0
    token = local_auth.read_admin_token(settings.data_dir)
    if not token:
        if not store.signing_keys():
            print(
                f"cornjacket: error: no signing key in {store.folder}: run `cornjacket up` "
                "once (it makes one) or `cornjacket token rotate-key`",
                file=sys.stderr,
            )
            return 1
        token = local_auth.write_admin_token(settings.data_dir, settings.auth)
    print(token)
    return 0


def _ttl(text: str) -> float:
    from services.cli.auth import MAX_TTL
    from services.core.errors import ConfigError

    try:
        seconds = Env({"ttl": text}).duration("ttl", 0.0, lo=1.0)
    except ConfigError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration of at least 1s like 90s, 15m, 12h or 30d"
        ) from None
    if seconds > MAX_TTL:
        raise argparse.ArgumentTypeError(f"{text!r} is longer than {MAX_TTL / 86400:g}d")
    return seconds


def _migrate(service: str) -> int:
    from services.infra import migrations

    env = Env()
    targets = (
        ("ingestion", "eventhandler", "actions", "inference") if service == "all" else (service,)
    )
    for name in targets:
        url = env.db_url(f"CJ_{name.upper()}_DATABASE_URL")
        n = migrations.apply(url, name)
        print(f"{name}: applied {n} migration(s)")
    return 0


def _db_roles(args: argparse.Namespace) -> int:
    """One login role per service (services/cli/db_roles.py; ADR 17)."""
    from services.cli import db_roles

    admin_url = os.environ.get("CJ_DB_ADMIN_URL", "")
    if not admin_url:
        raise ConfigError("CJ_DB_ADMIN_URL is not set: db-roles runs with the master login")
    if not admin_url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("CJ_DB_ADMIN_URL is not a postgresql:// URL")
    results = db_roles.apply(admin_url, prefix=args.role_prefix, secrets_dir=args.secrets_dir)
    for r in results:
        how = "created" if r.created else "updated"
        where = f", new password in {args.secrets_dir / r.service}" if r.generated_password else ""
        print(f"{r.service}: role {r.role} {how}{where}")
    return 0


def _rotate_secrets_key(init: bool) -> int:
    """Seal every webhook signing secret under a new key (the key file keeps the previous
    key, which only opens, until the next rotation). ``init``: only make a missing key file."""
    from services.actions import secretbox
    from services.actions.store import reseal_secrets
    from services.cli.stack import secrets_key_path

    if init:
        file = os.environ.get("CJ_ACTIONS_SECRETS_KEY_FILE", "")
        if not file:
            raise ConfigError("--init writes CJ_ACTIONS_SECRETS_KEY_FILE, which is not set")
        if Path(file).exists():
            print(f"secrets key file {file} exists; left as it is")
        else:
            secretbox.ensure_key_file(Path(file))
            print(f"made secrets key file {file}")
        return 0

    settings = ActionsSettings.from_env()
    if settings.secrets_key:
        raise ConfigError(
            "CJ_ACTIONS_SECRETS_KEY is set: this command rotates a key file "
            "(CJ_ACTIONS_SECRETS_KEY_FILE); put the key in a file first"
        )
    path = settings.secrets_key_file or secrets_key_path(StackSettings.from_env().data_dir)
    if not path.is_file():
        raise ConfigError(f"no secrets key file at {path} (`cornjacket up` makes one)")
    where = f"secrets key file {path}"
    old = secretbox.parse_keys(path.read_text(), where)
    new = secretbox.generate_key()
    keep = [base64.b64encode(k).decode() for k in old[:1]]
    # New key first (it seals), the previous one still opens: a running orchestrator keeps
    # working during and after the rotation; keys older than that are dropped.
    secretbox.write_key_file(path, [new, *keep])
    box = secretbox.SecretBox(secretbox.parse_keys(path.read_text(), where))
    n = reseal_secrets(settings.database_url, box)
    print(f"re-sealed the signing secrets of {n} rule(s) under key {box.current_id} ({path})")
    return 0


def _postgres(action: str) -> int:
    """Stop or start the PostgreSQL of a running `cornjacket up` (for outage drills)."""
    from services.cli import control
    from services.cli.embedded import EmbeddedPostgres

    settings = StackSettings.from_env()
    if control.supervisor_pid(settings.data_dir) is None:
        print(f"cornjacket: no `cornjacket up` is running on {settings.data_dir}", file=sys.stderr)
        return 1
    pg = EmbeddedPostgres(settings.data_dir / "pgdata", settings.postgres_port, Path("/dev/null"))
    if action == "status":
        print("PostgreSQL is " + ("up" if pg.accepting() else "down"))
        return 0
    if action == "stop":
        pid = pg.postmaster_pid()
        if pid is None:
            print("PostgreSQL is not running")
            return 0
        os.kill(pid, signal.SIGINT)  # fast shutdown: roll back open transactions, checkpoint
        deadline = time.monotonic() + 30
        while pg.postmaster_pid() is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        print("PostgreSQL stopped; ingest now answers 503 until `cornjacket postgres start`")
        return 0
    control.request(settings.data_dir, "start-postgres")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if pg.accepting():
            print("PostgreSQL is up")
            return 0
        time.sleep(0.2)
    print("cornjacket: PostgreSQL did not come up within 60s; see the `up` output", file=sys.stderr)
    return 1


def _broker_swap() -> int:
    from services.cli import control

    settings = StackSettings.from_env()
    if control.supervisor_pid(settings.data_dir) is None:
        print(f"cornjacket: no `cornjacket up` is running on {settings.data_dir}", file=sys.stderr)
        return 1
    control.request(settings.data_dir, "swap-broker")
    print("asked the running `cornjacket up` to swap the broker; its output says when it is done")
    return 0


def _mqtt_add_user(args: argparse.Namespace) -> int:
    """Add or replace a user in an MQTT users file, reading the password without echo."""
    import getpass

    from services.mqtt.access import DEFAULT_PUBLISH, hash_password, load_users, render_user

    path = Path(args.file)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if password != getpass.getpass("again: "):
            print("cornjacket: error: the passwords differ", file=sys.stderr)
            return 1
    if len(password) < 8:
        print("cornjacket: error: use a password of at least 8 characters", file=sys.stderr)
        return 1
    users = load_users(path) if path.exists() else {}
    users.pop(args.name, None)
    blocks = [render_user(u.name, u.password_hash, u.publish, u.subscribe) for u in users.values()]
    publish = tuple(args.publish or DEFAULT_PUBLISH)
    blocks.append(render_user(args.name, hash_password(password), publish, args.subscribe or ()))
    header = "# Cornjacket MQTT users (CJ_MQTT_USERS_FILE); edit with `cornjacket mqtt add-user`\n"
    _write_private(path, header + "\n".join(blocks))
    print(f"{args.name} may now connect; publish allowed on: {', '.join(publish)}")
    return 0


def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` with a file created 0600: the secret is never readable by others, not
    even between the write and a chmod."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(text)
    tmp.replace(path)


def _replay(args: argparse.Namespace) -> int:
    """Rebuild projections from the event store while the platform keeps running."""
    from services.eventhandler.projectors import default_registry
    from services.eventhandler.rebuild import rebuild, render_progress
    from services.eventhandler.rebuild_store import AsideTable
    from services.infra import migrations
    from services.infra.audit import SyncAuditLog, cli_caller
    from services.infra.event_store import EventStoreSource

    env = Env()
    source_url = env.db_url("CJ_INGESTION_DATABASE_URL")
    target_url = env.db_url("CJ_EVENTHANDLER_DATABASE_URL")
    migrations.apply(target_url, "eventhandler")
    types = args.projection or list(PROJECTION_TYPES)
    tty = sys.stderr.isatty()
    last = [0.0]

    def progress(done: int, total: int, seconds: float) -> None:
        if tty or seconds - last[0] >= 2 or done >= total:
            last[0] = seconds
            end = "\r" if tty and done < total else "\n"
            print(render_progress(done, total, seconds), end=end, file=sys.stderr, flush=True)

    target = AsideTable(target_url)
    # Recorded in the event handler's audit log (ADR 16); no record, no rebuild.
    with (
        SyncAuditLog(target_url, "eventhandler") as audit_log,
        audit_log.record(cli_caller(), "cli/replay") as audit,
    ):
        audit.change = {"projections": types, "check": args.check}
        try:
            report = rebuild(
                EventStoreSource(source_url),
                target,
                default_registry(),
                types,
                batch_size=args.batch_size,
                swap=not args.check,
                progress=progress,
            )
        finally:
            target.close()
        audit.change.update(events=report.events, rows=report.rows, differences=report.differences)
    what = ", ".join(types)
    print(
        f"{report.events:,} events in {report.seconds:.1f}s ({report.rate:,.0f} events/s); "
        f"{report.differences} row(s) of {what} differed from the live projections"
    )
    if args.check:
        print("--check: nothing was swapped in")
        return 0 if report.differences == 0 else 3
    print(f"swapped in {report.rows:,} row(s) of {what}")
    return 0


def _republish(args: argparse.Namespace) -> int:
    """Publish stored events again, in ingestion order, with the relay's producer settings."""
    import asyncio

    from services.core.events import ALL_TOPICS
    from services.eventhandler.rebuild import render_progress
    from services.infra import migrations
    from services.infra.audit import SyncAuditLog, cli_caller
    from services.infra.event_store import EventStoreSource
    from services.infra.kafka import KafkaPublisher, ensure_topics
    from services.ingestion.republish import republish

    common = CommonSettings.from_env(Env())
    source = EventStoreSource(
        Env().db_url("CJ_INGESTION_DATABASE_URL"),
        since=args.since,
        until=args.until,
        order="ingested_at",
    )
    total = source.count()
    print(f"republishing {total:,} event(s) to {common.brokers}", file=sys.stderr)
    ensure_topics(
        common.brokers,
        ALL_TOPICS,
        common.topic_partitions,
        common.topic_replication,
        security=common.kafka,
    )

    def progress(done: int, n: int, seconds: float) -> None:
        end = "\r" if sys.stderr.isatty() and done < n else "\n"
        print(render_progress(done, n, seconds), end=end, file=sys.stderr, flush=True)

    async def go() -> int:
        publisher = KafkaPublisher(common.brokers, security=common.kafka)
        try:
            return await republish(
                source.batches(args.batch_size), total, publisher, progress=progress
            )
        finally:
            publisher.close()

    # Recorded in the event handler's audit log (it folds what is republished; ADR 16).
    audit_url = Env().db_url("CJ_EVENTHANDLER_DATABASE_URL")
    migrations.apply(audit_url, "eventhandler")
    with (
        SyncAuditLog(audit_url, "eventhandler") as audit_log,
        audit_log.record(cli_caller(), "cli/republish") as audit,
    ):
        audit.change = {
            "since": args.since.isoformat(),
            "until": args.until.isoformat() if args.until else "",
            "events": total,
        }
        done = asyncio.run(go())
        audit.change["republished"] = done
    print(f"republished {done:,} event(s)")
    return 0


def _replicas(text: str) -> dict[str, int]:
    try:
        return parse_replicas(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--replicas: ")) from None


def _upstream(text: str) -> tuple[str, tuple[str, int]]:
    name, _, addr = text.partition("=")
    host, _, port = addr.rpartition(":")
    if (
        name
        not in (
            "ingestion",
            "query",
            "eventhandler",
            "relay",
            "mqtt",
            "actions",
            "tsdb",
            "inference",
        )
        or not host
        or not port.isdigit()
    ):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not NAME=HOST:PORT with NAME one of ingestion, query, eventhandler, "
            "relay, mqtt, actions, tsdb, inference"
        )
    return name, (host, int(port))


def _envoy_config(args: argparse.Namespace) -> int:
    import dataclasses

    from services.cli.envoy_config import DESCRIPTOR, render

    upstreams = {
        "ingestion": ("127.0.0.1", 50051),
        "query": ("127.0.0.1", 50052),
        "eventhandler": ("127.0.0.1", 50053),
        "actions": ("127.0.0.1", 50056),
    }
    upstreams.update(dict(args.upstream or []))
    auth = AuthSettings.from_env()
    jwks_file = None
    if args.insecure:
        auth = dataclasses.replace(auth, insecure=True)
    elif args.local_keys:
        jwks_file = _local_keys_for(args.out, auth)
        if jwks_file is None:
            return 1
    elif not auth.insecure and not auth.jwks_uri and auth.jwks_file is None:
        print(
            "cornjacket: error: set CJ_AUTH_JWKS_FILE or CJ_AUTH_JWKS_URI (the keys Envoy "
            "trusts), pass --local-keys to use $CJ_DATA_DIR/auth, or --insecure to render an "
            "edge without authentication",
            file=sys.stderr,
        )
        return 1
    text = render(
        auth=auth,
        edge=EdgeSettings.from_env(),
        jwks_file=jwks_file,
        edge_port=args.edge_port,
        admin_port=args.admin_port,
        upstreams=upstreams,
        edge_address=args.edge_address,
        descriptor=Path(args.descriptor) if args.descriptor else DESCRIPTOR,
    )
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    return 0


def _local_keys_for(out: str, auth: AuthSettings) -> Path | None:
    """The local key store (made on first use) for a rendered config: its JWKS is copied next
    to ``out`` (where Envoy reads it) and a development admin token is written."""
    import shutil

    from services.cli.auth import admin_token_path, key_store, write_admin_token

    if out == "-":
        print("cornjacket: error: --local-keys needs --out FILE", file=sys.stderr)
        return None
    data_dir = StackSettings.from_env().data_dir
    store = key_store(data_dir)
    store.ensure()
    jwks = Path(out).resolve().parent / "jwks.json"
    shutil.copyfile(store.jwks_path, jwks)
    jwks.chmod(0o644)
    write_admin_token(data_dir, auth)
    print(f"keys from {store.folder}; admin token in {admin_token_path(data_dir)}")
    return jwks


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 1 <= value <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{value} is not between 1 and 1000000")
    return value


def _when(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time like 2026-11-27T10:00:00Z"
        ) from None
    if t.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset, e.g. Z or +01:00")
    return t


def _edge_token(stack: StackSettings) -> str:
    from services.cli.auth import edge_token

    return edge_token(stack)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cornjacket",
        description="Cornjacket event platform: ingest, store, fan out and project events.",
        epilog="Configuration comes from CJ_* environment variables; see the README.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = sub.add_parser(
        "up",
        help="start everything locally: embedded PostgreSQL, broker, Envoy and every service",
        description="Start the whole platform on this machine (no Docker). Ctrl-C stops it. "
        "Envoy asks for a bearer token on every API call; the banner prints a development "
        "admin token (also in $CJ_DATA_DIR/admin.token).",
    )
    up.add_argument(
        "--insecure",
        action="store_true",
        help="no authentication at all (same as CJ_AUTH_INSECURE=true); for local "
        "experiments only, /health and the banner say so",
    )
    up.add_argument(
        "--replicas",
        type=_replicas,
        metavar="SERVICE=N[,...]",
        help="run N processes of a service (N 1..8), e.g. relay=2,ingestion=2,eventhandler=2,"
        "actions=2; services: ingestion, relay, eventhandler, query, mqtt, actions (same as "
        "CJ_REPLICAS). Envoy balances over every replica and skips a dead one; consumers "
        "share their group; replicas beyond the first listen on free ports, listed at start",
    )
    token = sub.add_parser(
        "token",
        help="print the development admin token, or sign a token with the local key",
        description="Without an action: print the admin token of the local stack "
        "($CJ_DATA_DIR/admin.token, signed again if it expired). Tokens are ES256 JWTs "
        "signed with the key under $CJ_DATA_DIR/auth/ that `cornjacket up` makes; Envoy "
        "checks issuer (CJ_AUTH_ISSUER), audience (CJ_AUTH_AUDIENCE), expiry and scope.",
    )
    token_sub = token.add_subparsers(dest="token_command", required=False, metavar="ACTION")
    create = token_sub.add_parser(
        "create",
        help="sign a token for a person, device or test",
        description="Print a signed token. Scopes: events:write (ingest), read "
        "(projections, lineage), admin (rules, deliveries, breakers, dead letters).",
        epilog="example: cornjacket token create --subject ci-bot --scope events:write "
        "--scope read --ttl 12h",
    )
    create.add_argument("--subject", required=True, help="who the token is for (the sub claim)")
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        metavar="SCOPE",
        help="events:write, read or admin (repeatable, or several separated by spaces)",
    )
    create.add_argument(
        "--ttl",
        type=_ttl,
        default=3600.0,
        help="lifetime like 90s, 15m, 12h or 30d (default 1h, at most 366d)",
    )
    token_sub.add_parser(
        "rotate-key",
        help="add a new signing key (older keys stay trusted until removed)",
        description="The new key signs from now on; the JWKS keeps the older keys, so "
        "tokens they signed keep working until they expire. Restart `cornjacket up` after.",
    )
    serve = sub.add_parser(
        "serve",
        help="run one service against configured PostgreSQL and Kafka (containers, production)",
    )
    serve.add_argument("service", choices=SERVE_CHOICES)
    rotate = sub.add_parser(
        "rotate-secrets-key",
        help="re-seal every webhook signing secret under a new key (CJ_ACTIONS_SECRETS_KEY_FILE)",
    )
    rotate.add_argument(
        "--init",
        action="store_true",
        help="only make the key file when it is missing (no database; docker-compose.yml)",
    )
    db_roles = sub.add_parser(
        "db-roles",
        help="create or update one database login per service (master login: CJ_DB_ADMIN_URL)",
        description="Applies every schema's migrations, then gives each service a login role "
        "that owns its own schema and nothing else; the query role may only read "
        "eventhandler.projections. Re-run safe. Passwords: CJ_DB_ROLES_<SERVICE>_PASSWORD, "
        "else <secrets-dir>/<service>/password (generated there, 0600, when missing, with a "
        "pgpass file for ?passfile=).",
    )
    db_roles.add_argument(
        "--secrets-dir", type=Path, help="folder of the per-service password and pgpass files"
    )
    db_roles.add_argument(
        "--role-prefix", default="cj_", help="role names are PREFIX<service> (default cj_)"
    )
    migrate = sub.add_parser("migrate", help="apply pending database migrations and exit")
    migrate.add_argument(
        "service", choices=("ingestion", "eventhandler", "actions", "inference", "all")
    )
    pg = sub.add_parser(
        "postgres",
        help="stop, start or check the embedded PostgreSQL of a running `cornjacket up`",
        description="Outage drills: `stop` shuts the database down (ingest then answers 503); "
        "`start` asks the running `cornjacket up` to bring it back.",
    )
    pg.add_argument("action", choices=("stop", "start", "status"))
    broker = sub.add_parser(
        "broker",
        help="swap the embedded broker of a running `cornjacket up` for an empty one",
        description="The embedded broker (Tansu, in-memory) keeps every message; `cornjacket up` "
        "swaps it by itself past CJ_BROKER_MAX_RSS_MB. `swap` asks for it now: the relay pauses "
        "(ingest goes on into the outbox), the consumers read to the end, then a new broker "
        "starts. Nothing accepted is lost.",
    )
    broker.add_argument("action", choices=("swap",))
    envoy = sub.add_parser(
        "envoy-config",
        help="render the Envoy edge configuration (for containers and custom deployments)",
    )
    envoy.add_argument("--out", default="-", help="file to write, '-' for stdout (default)")
    envoy.add_argument("--edge-port", type=int, default=8080)
    envoy.add_argument("--edge-address", default="127.0.0.1", help="0.0.0.0 inside a container")
    envoy.add_argument("--admin-port", type=int, default=9901)
    envoy.add_argument("--descriptor", help="path of cornjacket.pb as Envoy will see it")
    envoy.add_argument(
        "--local-keys",
        action="store_true",
        help="trust the key store under $CJ_DATA_DIR/auth (made on first use, as by "
        "`cornjacket up`): its JWKS is copied next to --out, an admin token written to "
        "$CJ_DATA_DIR/admin.token (docker-compose)",
    )
    envoy.add_argument(
        "--insecure",
        action="store_true",
        help="render without authentication (otherwise CJ_AUTH_JWKS_FILE or "
        "CJ_AUTH_JWKS_URI and the other CJ_AUTH_* settings are used)",
    )
    envoy.add_argument(
        "--upstream",
        action="append",
        type=_upstream,
        metavar="NAME=HOST:PORT",
        help="where a service listens, e.g. ingestion=ingestion:50051 (repeatable)",
    )
    from services.cli import dlq, trace

    dlq.add_parser(sub)
    trace.add_parser(sub)
    replay = sub.add_parser(
        "replay",
        help="rebuild projections from the event store (build aside, then swap in)",
        description="Folds every stored event, in event_time order, through the projectors "
        "into a table aside and swaps it in atomically; the platform keeps running. Also "
        "the recovery path after the in-memory development broker lost its data.",
    )
    replay.add_argument(
        "--projection",
        action="append",
        choices=PROJECTION_TYPES,
        help="rebuild only this projection type (repeatable; default all)",
    )
    replay.add_argument(
        "--check",
        action="store_true",
        help="build aside and count rows that differ from the live ones; swap nothing "
        "(exit 3 if any differ)",
    )
    replay.add_argument("--batch-size", type=_positive, default=5000, help="events per read/write")
    republish = sub.add_parser(
        "republish",
        help="publish stored events to the bus again (new consumer, broker that lost data)",
        description="Reads ingestion.event_store (CJ_INGESTION_DATABASE_URL) in ingestion "
        "order and publishes each event like the relay does (same topic, key and Protobuf "
        "envelope, idempotent producer, acks=all). Consumers are idempotent by event_id.",
    )
    republish.add_argument(
        "--since", type=_when, required=True, help="events ingested at or after (ISO 8601)"
    )
    republish.add_argument("--until", type=_when, help="events ingested before (ISO 8601)")
    republish.add_argument("--batch-size", type=_positive, default=1000)
    mqtt = sub.add_parser("mqtt", help="manage MQTT device credentials")
    mqtt_sub = mqtt.add_subparsers(dest="mqtt_command", required=True, metavar="ACTION")
    add_user = mqtt_sub.add_parser(
        "add-user",
        help="add or replace a device user (argon2-hashed password, publish ACL)",
        description="Writes the users file the gateway reads from CJ_MQTT_USERS_FILE.",
    )
    add_user.add_argument("name", help="the MQTT username")
    add_user.add_argument("--file", required=True, help="users file to create or update")
    add_user.add_argument(
        "--publish",
        action="append",
        metavar="FILTER",
        help="topic filter the user may publish to (repeatable; %%u = username, "
        "%%c = client id; default cornjacket/v1/events/+/%%u)",
    )
    add_user.add_argument(
        "--subscribe",
        action="append",
        metavar="FILTER",
        help="extra topic filter the user may subscribe to (its own feedback topics always)",
    )
    add_user.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "up":
            return _up(args.insecure, args.replicas)
        if args.command == "token":
            return _token(args)
        if args.command == "serve":
            return _serve(args.service)
        if args.command == "migrate":
            return _migrate(args.service)
        if args.command == "db-roles":
            return _db_roles(args)
        if args.command == "postgres":
            return _postgres(args.action)
        if args.command == "rotate-secrets-key":
            return _rotate_secrets_key(args.init)
        if args.command == "broker":
            return _broker_swap()
        if args.command == "envoy-config":
            return _envoy_config(args)
        if args.command == "mqtt":
            return _mqtt_add_user(args)
        if args.command == "replay":
            return _replay(args)
        if args.command == "republish":
            return _republish(args)
        if args.command == "trace":
            from services.cli import trace

            stack = StackSettings.from_env()
            return trace.run(args, f"127.0.0.1:{stack.edge_port}", _edge_token(stack))
        if args.command == "dlq":
            from services.cli import dlq

            stack = StackSettings.from_env()
            return dlq.run(args, f"127.0.0.1:{stack.edge_port}", _edge_token(stack))
    except CornjacketError as e:
        print(f"cornjacket: error: {e}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
