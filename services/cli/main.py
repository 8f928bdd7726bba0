"""The ``cornjacket`` command: run the whole local stack, or one service."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from services.config.settings import (
    ActionsSettings,
    CommonSettings,
    Env,
    EventHandlerSettings,
    IngestionSettings,
    QuerySettings,
    StackSettings,
)
from services.core.errors import CornjacketError
from services.infra import logs

SERVE_CHOICES = ("ingestion", "relay", "eventhandler", "query", "actions")


def _serve(service: str) -> int:
    common = CommonSettings.from_env(Env())
    logs.setup(service, level=common.log_level, fmt=common.log_format)
    from services.infra.runtime import run

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
    if service == "query":
        from services.query import main as query

        qs = QuerySettings.from_env()
        return run(lambda: query.run(qs))
    from services.eventhandler import main as eventhandler

    try:
        eventhandler.run(EventHandlerSettings.from_env())
    except CornjacketError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def _up() -> int:
    from services.cli import control
    from services.cli.stack import Stack
    from services.cli.supervisor import Supervisor

    settings = StackSettings.from_env()
    stack = Stack(settings, say=lambda m: print(f"cornjacket: {m}", flush=True))
    stopping = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = 0
    supervisor = Supervisor(stack, requests=lambda: control.take_requests(settings.data_dir))
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
        print("\nCornjacket is up:\n" + stack.endpoints() + "\n\nPress Ctrl-C to stop.", flush=True)
        while not stopping:
            if not supervisor.tick():
                code = 1
                break
            time.sleep(0.5)
    except CornjacketError as e:
        print(f"cornjacket: error: {e}", file=sys.stderr, flush=True)
        code = 1
    finally:
        print("cornjacket: stopping ...", flush=True)
        stack.stop()
        control.mark_stopped(settings.data_dir)
        print("cornjacket: stopped", flush=True)
    return code


def _migrate(service: str) -> int:
    from services.infra import migrations

    env = Env()
    targets = ("ingestion", "eventhandler", "actions") if service == "all" else (service,)
    for name in targets:
        url = env.db_url(f"CJ_{name.upper()}_DATABASE_URL")
        n = migrations.apply(url, name)
        print(f"{name}: applied {n} migration(s)")
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


def _upstream(text: str) -> tuple[str, tuple[str, int]]:
    name, _, addr = text.partition("=")
    host, _, port = addr.rpartition(":")
    if (
        name not in ("ingestion", "query", "eventhandler", "relay", "actions")
        or not host
        or not port.isdigit()
    ):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not NAME=HOST:PORT with NAME one of ingestion, query, eventhandler, "
            "relay, actions"
        )
    return name, (host, int(port))


def _envoy_config(args: argparse.Namespace) -> int:
    from services.cli.envoy_config import DESCRIPTOR, render

    upstreams = {
        "ingestion": ("127.0.0.1", 50051),
        "query": ("127.0.0.1", 50052),
        "eventhandler": ("127.0.0.1", 50053),
        "actions": ("127.0.0.1", 50056),
    }
    upstreams.update(dict(args.upstream or []))
    text = render(
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cornjacket",
        description="Cornjacket event platform: ingest, store, fan out and project events.",
        epilog="Configuration comes from CJ_* environment variables; see the README.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser(
        "up",
        help="start everything locally: embedded PostgreSQL, broker, Envoy and every service",
        description="Start the whole platform on this machine (no Docker). Ctrl-C stops it.",
    )
    serve = sub.add_parser(
        "serve",
        help="run one service against configured PostgreSQL and Kafka (containers, production)",
    )
    serve.add_argument("service", choices=SERVE_CHOICES)
    migrate = sub.add_parser("migrate", help="apply pending database migrations and exit")
    migrate.add_argument("service", choices=("ingestion", "eventhandler", "actions", "all"))
    pg = sub.add_parser(
        "postgres",
        help="stop, start or check the embedded PostgreSQL of a running `cornjacket up`",
        description="Outage drills: `stop` shuts the database down (ingest then answers 503); "
        "`start` asks the running `cornjacket up` to bring it back.",
    )
    pg.add_argument("action", choices=("stop", "start", "status"))
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
        "--upstream",
        action="append",
        type=_upstream,
        metavar="NAME=HOST:PORT",
        help="where a service listens, e.g. ingestion=ingestion:50051 (repeatable)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "up":
            return _up()
        if args.command == "serve":
            return _serve(args.service)
        if args.command == "migrate":
            return _migrate(args.service)
        if args.command == "postgres":
            return _postgres(args.action)
        if args.command == "envoy-config":
            return _envoy_config(args)
    except CornjacketError as e:
        print(f"cornjacket: error: {e}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
