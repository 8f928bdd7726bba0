"""`make bench` / `cornjacket bench`: measure the pipeline and the ceilings it is compared with.

Starts its own stack (the same parts as `make run`, on free ports, in a scratch data dir,
every feature on: authentication, the time-series writer, AI inference, the orchestrator
with 10 enabled rules matching 10 % of the load's events and a local webhook receiver, and
one watcher on the live tail for the whole run) unless --edge points at a running one,
measures the ceilings (C = Envoy -> no-op HTTP, U = no-op gRPC unary direct, PostgreSQL
insert rates), runs the scenarios at fractions of those ceilings, and prints PASS/FAIL per
target of issue 20 (docs/performance.md, "Issue 20 targets") beside a JSON result, a PNG
chart and a CPU-per-event table per stage.

Scenarios (names say the rate; closed = as fast as the in-flight requests allow):
  grpc-batch-max     gRPC batches of 500, closed loop (information)
  grpc-batch-1.0U    gRPC batches of 500 at 1.0 x U events/s            (target 1)
  http-max           HTTP single events, closed loop, ratio to C        (target 2)
  http-max-noauth    http-max with Envoy's authentication off (auth cost note)
  grpc-unary-max     gRPC single events, closed loop (information)
  http-0.12C         HTTP single events at 0.12 x C, after the batches  (target 3)
  mqtt-max           MQTT QoS 1, closed loop (information)
  mqtt-0.12C         MQTT QoS 1 at 0.12 x C msg/s from 200 devices      (target 5)
  query-0.12C        GetProjection over HTTP at 0.12 x C req/s          (target 4)
  series-0.03C       24 h in 1-minute buckets of one device with a day of data, the
                     average only (the console chart's read, aggregates=avg), 0.03 x C
                                                                          (target 4)
  soak-0.25C         gRPC batches of 100 at 0.25 x C for --soak seconds (target 6)
With --skip-ceilings the fractions apply to DEFAULT_CEILINGS, and the table says so.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import names
from bench.costs import CostMeter
from bench.external import local_stack_processes
from bench.loadgen import MQTT_PASSWORD_ENV, MQTT_USER, LoadSpec
from bench.pg_ceiling import measure_pg
from bench.profiler import Profiler, format_hot_spots
from bench.report import AUTH_OFF, auth_cost_note, chart, progress, summary_table
from bench.results import BenchResult, Ceiling
from bench.scenarios import Target, run_load, run_scenario
from bench.tsdb import seed_day, series_path
from bench.watcher import Watcher
from bench.webhooks import FastReceiver, matching_rules
from services.cli.auth import edge_token
from services.cli.embedded import EmbeddedEnvoy
from services.cli.envoy_config import render
from services.cli.processes import Child, free_port, port_open, wait_until
from services.cli.stack import Stack, settings_on_free_ports
from services.cli.supervisor import Supervisor
from services.config.settings import StackSettings
from services.mqtt.access import hash_password, render_user


def noop_ceilings(work: Path, args: argparse.Namespace) -> list[Ceiling]:
    """The no-op servicer called directly, and through an Envoy configured like ours."""
    port = free_port()
    noop = Child(
        "noop",
        [sys.executable, "-m", "bench.noop_server", "--port", str(port)],
        log_path=work / "noop.log",
    )
    noop.start()
    edge, admin = free_port(), free_port()
    config = work / "envoy-noop.yaml"
    config.write_text(
        render(
            edge_port=edge,
            admin_port=admin,
            upstreams={
                name: ("127.0.0.1", port)
                for name in ("ingestion", "query", "eventhandler", "actions")
            },
        )
    )
    envoy = EmbeddedEnvoy(config, work / "envoy-noop.log")
    try:
        wait_until(lambda: port_open("127.0.0.1", port), 30, what="no-op server", child=noop)
        envoy.start()
        wait_until(lambda: port_open("127.0.0.1", edge), 30, what="Envoy for the no-op server")
        time.sleep(2)  # first health checks
        d = args.ceiling_duration
        # The no-op servicer stands where ingestion stands: its CPU per call is the floor of
        # ingestion's, Envoy's the floor of the edge's (the cost table shows them together).
        assert noop.pid is not None and envoy.child is not None and envoy.child.pid is not None
        procs = {"ingestion": noop.pid, "envoy": envoy.child.pid}

        def measured(spec: LoadSpec, label: str) -> tuple[float, dict[str, float]]:
            meter = CostMeter(procs, None, None)
            meter.start()
            try:
                merged = run_load(spec, args.procs, work, label=label)
            except BaseException:
                meter.close()
                raise
            return merged.events_ok / d, meter.stop(merged.events_ok).cpu_us

        direct, direct_cpu = measured(
            LoadSpec("grpc-unary", f"127.0.0.1:{port}", 0, args.concurrency, d),
            "ceiling grpc-noop-direct",
        )
        via_envoy, envoy_cpu = measured(
            LoadSpec("http", f"127.0.0.1:{edge}", 0, args.concurrency, d),
            "ceiling envoy-noop-http",
        )
        return [
            Ceiling(
                names.U,
                direct,
                "req/s",
                "U: unary IngestEvent, no-op asyncio+uvloop servicer",
                cpu_us={k: v for k, v in direct_cpu.items() if k != "envoy"},
            ),
            Ceiling(
                names.C,
                via_envoy,
                "req/s",
                "C: POST /api/v1/events through Envoy to the no-op servicer",
                cpu_us=envoy_cpu,
            ),
        ]
    finally:
        envoy.stop()
        noop.stop()


def fresh_bus(stack: Stack) -> None:
    """Restart the embedded broker (and the relay and handler, which reconnect and recreate
    topics) so a scenario does not inherit the previous one's retained messages: Tansu's
    memory engine never drops a message (no retention, no DeleteRecords) and slows down as
    it holds more, which a real Kafka/Redpanda with retention does not."""
    if stack.broker.child is None:
        return
    progress("bench: fresh broker for the next scenario")
    stack.restart(stack.broker.child, republish=False)
    wait_until(stack.healthy, 90, what="the stack to be healthy after the broker restart")
    time.sleep(2)


def _profiler(
    args: argparse.Namespace, stack: Stack, stamp: str, scenario: str, duration_s: float
) -> Profiler | None:
    """A py-spy recording of the Python services, centred in the scenario's load."""
    if not args.profile:
        return None
    if not Profiler.available():
        progress("bench: --profile needs py-spy (pip install py-spy); not profiling")
        return None
    seconds = min(args.profile, duration_s)
    pids = {n: c.pid for n, c in stack.services.items() if c.pid is not None}
    # run_scenario starts the load ~1.5 s from now; centre the recording in the load.
    profiler = Profiler(
        pids,
        args.out / f"profile-{stamp}" / scenario,
        delay=1.5 + (duration_s - seconds) / 2,
        seconds=seconds,
    )
    profiler.start()
    return profiler


@contextlib.contextmanager
def edge_without_auth(stack: Stack) -> Iterator[None]:
    """Envoy restarted without jwt_authn and RBAC for one scenario, then as it was: the same
    stack and load, so the difference in throughput is what authentication costs."""
    secure = stack.envoy.config_path.read_text()

    def swap(config: str, what: str) -> None:
        progress(f"bench: restarting Envoy {what}")
        stack.envoy.stop()
        stack.envoy.config_path.write_text(config)
        stack.envoy.start()
        wait_until(stack.healthy, 60, what=f"Envoy {what}")

    swap(stack.envoy_config(None, insecure=True), "WITHOUT authentication")
    try:
        yield
    finally:
        swap(secure, "with authentication again")


class BenchStack(Stack):
    """The stack under test, recording when the embedded broker is swapped (wall-time
    windows): the soak judges send->projection outside them and reports them apart."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.swaps: list[tuple[float, float]] = []

    def rotate_broker(self, *, why: str = "as requested", drain_timeout: float = 60.0) -> bool:
        start = time.time()
        try:
            return super().rotate_broker(why=why, drain_timeout=drain_timeout)
        finally:
            self.swaps.append((start, time.time()))


def own_target(stack: Stack) -> Target:
    return Target(
        edge=f"127.0.0.1:{stack.settings.edge_port}",
        ingestion=f"127.0.0.1:{stack.settings.ingestion_port}",
        db_url=stack.postgres.url,
        brokers=stack.broker.bootstrap,
        procs={c.name: c.pid for c in stack.children() if c.pid is not None},
        live_procs=lambda: {c.name: c.pid for c in stack.children() if c.pid is not None},
        token=stack.admin_token,
        groups=[(g, tuple(t)) for g, t, _ in stack._consumer_groups()],
        swaps=(lambda: list(stack.swaps)) if isinstance(stack, BenchStack) else None,
    )


def mqtt_users(work: Path) -> Path:
    """A users file for the load's MQTT devices (the gateway refuses anonymous devices by
    default): user MQTT_USER owning the client ids "bench-...", publishing any event topic,
    with a fresh password handed to the load generators in their environment."""
    password = secrets.token_urlsafe(16)
    os.environ[MQTT_PASSWORD_ENV] = password
    path = work / "mqtt-users.toml"
    path.write_text(
        render_user(
            MQTT_USER,
            hash_password(password),
            ("cornjacket/v1/events/+/+",),
            (),
            client_id_prefix=f"{MQTT_USER}-",
        )
    )
    path.chmod(0o600)
    return path


def features_on(stack: BenchStack, rx: FastReceiver) -> None:
    """Issue 20's "every feature on": authentication is the stack's default (checked), the
    time-series writer and AI inference run as processes of their own, the orchestrator gets
    the matching rules; a missing part fails the run here rather than measuring less."""
    missing = [n for n in ("tsdb", "inference", "actions", "query") if n not in stack.services]
    if missing:
        raise RuntimeError(f"bench: every feature must be on; not running: {missing}")
    if not stack.admin_token:
        raise RuntimeError("bench: the stack under test runs without authentication")
    headers = {"Authorization": f"Bearer {stack.admin_token}"}
    with httpx.Client(base_url=stack.edge_url, timeout=30, headers=headers) as http:
        rules = matching_rules(http, rx)
    progress(
        f"bench: every feature on: auth, tsdb, inference, {len(rules)} orchestrator rules "
        f"matching 10 % of the load (receiver :{rx.port}), a watcher on the live tail"
    )


def ceiling_values(result: BenchResult) -> dict[str, float]:
    """The run's ceilings by name; where one was not measured, its stated default is added
    to the result (marked not measured) so every ratio says what it was taken against."""
    for name, value in names.DEFAULT_CEILINGS.items():
        if result.ceiling(name) is None:
            result.ceilings.append(
                Ceiling(
                    name,
                    value,
                    "req/s",
                    "NOT MEASURED in this run: the stated default (bench/names.py)",
                    measured=False,
                )
            )
    return {c.name: c.value for c in result.ceilings}


def running_target(args: argparse.Namespace) -> Target:
    """A stack the benchmark did not start: what it can see of it is what it was told."""
    db_url = args.database_url or os.environ.get("CJ_INGESTION_DATABASE_URL")
    brokers = args.brokers or os.environ.get("CJ_REDPANDA_BROKERS")
    procs = local_stack_processes()
    progress(
        f"bench: running stack at {args.edge}; processes found here: "
        + (", ".join(sorted(procs)) or "none (CPU and memory columns stay empty)")
    )
    if not db_url:
        progress("bench: no --database-url: no outbox depth, send->projection or PG ceilings")
    if not brokers:
        progress("bench: no --brokers: no consumer lag")
    token = edge_token(StackSettings.from_env())
    if not token:
        progress("bench: no $CJ_TOKEN and no .cornjacket/admin.token: requests carry no token")
    return Target(edge=args.edge, db_url=db_url, brokers=brokers, procs=procs, token=token)


Plan = list[tuple[str, LoadSpec, int, tuple[str, float] | None]]


def scenario_plan(
    args: argparse.Namespace, edge: str, mqtt: str, ceilings: dict[str, float]
) -> Plan:
    """The scenarios in running order: (name, load, load processes, (ceiling, value)).
    Fixed rates are fractions of this run's ceilings (issue 20: a fixed 1,000/s is 0.11 x C
    on a fast day and 0.28 x C on a slow one); HTTP at 0.12 x C runs after the batches."""
    d = args.duration
    c, u = ceilings[names.C], ceilings[names.U]
    cc, uu = (names.C, c), (names.U, u)
    plan: Plan = [
        (
            names.BATCH_MAX,
            LoadSpec("grpc-batch", edge, 0, 4, d, batch=500, probe_every=250),
            1,
            uu,
        ),
        (
            # Does the pipeline keep up end to end at the run's U (events/s)? That needs a
            # fixed rate: a closed loop lets ingest take every cycle from relay and handler.
            names.BATCH,
            LoadSpec("grpc-batch", edge, names.BATCH_U * u, 16, d, batch=500, probe_every=250),
            1,
            uu,
        ),
        (
            names.HTTP_MAX,
            LoadSpec("http", edge, 0, args.concurrency, d, probe_every=50),
            args.procs,
            cc,
        ),
        (
            # http-max again with Envoy rendered without authentication (same stack, the
            # same token sent and ignored): the closing note compares the two.
            AUTH_OFF,
            LoadSpec("http", edge, 0, args.concurrency, d, probe_every=50),
            args.procs,
            cc,
        ),
        (
            "grpc-unary-max",
            LoadSpec("grpc-unary", edge, 0, args.concurrency, d, probe_every=50),
            args.procs,
            uu,
        ),
        (
            names.HTTP_FIXED,
            LoadSpec("http", edge, names.FIXED_C * c, 200, d, probe_every=10),
            1,
            cc,
        ),
        # MQTT devices (one connection each) publishing QoS 1 through the gateway.
        ("mqtt-max", LoadSpec("mqtt", mqtt, 0, 100, d, probe_every=50), args.procs, cc),
        (
            names.MQTT_FIXED,
            LoadSpec("mqtt", mqtt, names.FIXED_C * c, names.MQTT_DEVICES, d, probe_every=10),
            1,
            cc,
        ),
        (names.QUERY, LoadSpec("query-http", edge, names.FIXED_C * c, 200, d), 1, cc),
        (
            # The path (one device's day, seeded first) is set when the scenario runs.
            names.SERIES,
            LoadSpec("series-http", edge, names.SERIES_C * c, 200, d),
            1,
            cc,
        ),
    ]
    if args.soak:
        plan.append(
            (
                names.SOAK,
                LoadSpec(
                    "grpc-batch", edge, names.SOAK_C * c, 8, args.soak, batch=100, probe_every=100
                ),
                1,
                cc,
            )
        )
    return plan


def _setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("CJ_"):
        raise argparse.ArgumentTypeError(f"{text!r} is not CJ_NAME=VALUE")
    return name, value


@contextlib.contextmanager
def supervised(stack: Stack, broker_max_rss_mb: int) -> Iterator[None]:
    """Run the stack's supervisor beside a long scenario, as `cornjacket up` does, so the
    embedded broker is swapped when it outgrows its memory limit (it retains every message).
    Not during short scenarios: the benchmark restarts the broker itself between them."""
    halt = threading.Event()
    supervisor = Supervisor(
        stack, say=lambda m: progress(f"stack: {m}"), broker_max_rss_mb=broker_max_rss_mb
    )

    thread = threading.Thread(target=supervisor.run, args=(halt,), name="supervisor", daemon=True)
    thread.start()
    try:
        yield
    finally:
        halt.set()
        thread.join(timeout=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--duration", type=float, default=30, help="seconds per scenario (default 30)"
    )
    parser.add_argument(
        "--ceiling-duration", type=float, default=10, help="seconds per ceiling (default 10)"
    )
    parser.add_argument("--procs", type=int, default=2, help="load generator processes (default 2)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=32,
        help="in-flight requests per process in closed-loop runs",
    )
    parser.add_argument(
        "--soak",
        type=float,
        default=0,
        help="also run a memory soak of this many seconds (e.g. 600)",
    )
    parser.add_argument(
        "--only",
        nargs="*",
        help="run only these scenarios (names as in the table); http-max and "
        f"{AUTH_OFF} (the same load with Envoy's authentication off) together give the "
        "closing note on what authentication costs",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("bench/results"), help="where to write results"
    )
    parser.add_argument("--skip-ceilings", action="store_true")
    parser.add_argument(
        "--profile",
        type=float,
        default=0,
        metavar="SECONDS",
        help="sample each Python service with py-spy for this long in the middle of every "
        "scenario and print its hot spots (collapsed stacks kept under --out)",
    )
    parser.add_argument(
        "--relay-batch",
        type=int,
        default=500,
        help="CJ_OUTBOX_BATCH_SIZE for the stack under test (default 500; the platform "
        "default of 100 is tuned for latency at low rates, see docs/performance.md)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="CJ_NAME=VALUE",
        type=_setting,
        help="extra setting for the stack under test (repeatable), e.g. CJ_OUTBOX_LINGER=5ms",
    )
    parser.add_argument(
        "--broker-max-rss-mb",
        type=int,
        default=256,
        help="during the soak, swap the embedded broker past this RSS, as `cornjacket up` "
        "does (CJ_BROKER_MAX_RSS_MB; 0 = never, to see Tansu grow)",
    )
    parser.add_argument(
        "--edge",
        metavar="HOST:PORT",
        help="benchmark a running stack through this Envoy instead of starting one (e.g. "
        "`make run`'s); scenarios then share one broker, and --profile and the soak's broker "
        "swap are off",
    )
    parser.add_argument(
        "--mqtt",
        metavar="HOST:PORT",
        help="the running stack's MQTT gateway (default: edge host:1883)",
    )
    parser.add_argument(
        "--database-url",
        help="with --edge: the stack's PostgreSQL, for outbox depth, send->projection latency "
        "and the PostgreSQL ceilings (default: $CJ_INGESTION_DATABASE_URL)",
    )
    parser.add_argument(
        "--brokers",
        help="with --edge: the stack's Kafka-protocol bootstrap, for consumer lag "
        "(default: $CJ_REDPANDA_BROKERS)",
    )
    parser.add_argument(
        "--keep-broker",
        action="store_true",
        help="do not give each scenario a fresh embedded broker (see docs/performance.md)",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work = Path(tempfile.mkdtemp(prefix="cj-bench-"))
    progress(f"bench: scratch dir {work}")

    if args.edge and (args.profile or args.env):
        parser.error("--profile and --env need the benchmark's own stack (leave out --edge)")
    stack = (
        None
        if args.edge
        else BenchStack(
            settings_on_free_ports(work / "stack", start_timeout=120),
            extra_env={
                "CJ_LOG_LEVEL": "warning",
                "CJ_OUTBOX_BATCH_SIZE": str(args.relay_batch),
                # The local webhook receiver: an intended internal target (allow-listed).
                "CJ_ACTIONS_ALLOWED_TARGETS": "127.0.0.1",
                "CJ_MQTT_USERS_FILE": str(mqtt_users(work)),
                **dict(args.env),
            },
            say=lambda m: progress(f"stack: {m}"),
        )
    )
    result = BenchResult(
        started_at=stamp,
        machine={
            "cpus": str(len(__import__("os").sched_getaffinity(0))),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "git": subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
            ).stdout.strip(),
        },
        config={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        ceilings=[],
        scenarios=[],
    )
    rx: FastReceiver | None = None
    watcher: Watcher | None = None
    hot_spots: list[str] = []
    try:
        if not args.skip_ceilings:
            progress("bench: measuring ceilings (no-op gRPC servicer, Envoy, PostgreSQL)")
            result.ceilings += noop_ceilings(work, args)
        if stack is not None:
            stack.start()
            rx = FastReceiver()
            features_on(stack, rx)
            target = own_target(stack)
            mqtt = f"127.0.0.1:{stack.settings.mqtt_port}"
        else:
            target = running_target(args)
            mqtt = args.mqtt or f"{args.edge.rpartition(':')[0]}:1883"
        watcher = target.watcher = Watcher(target.edge, target.token)
        if not args.skip_ceilings and target.db_url:
            result.ceilings += measure_pg(target.db_url, duration_s=args.ceiling_duration)
        plan = scenario_plan(args, target.edge, mqtt, ceiling_values(result))
        for name, spec, procs, ceil in plan:
            if args.only and name not in args.only:
                continue
            if name == AUTH_OFF and stack is None:
                progress(f"bench: {name} needs the benchmark's own stack (leave out --edge)")
                continue
            if name == names.SERIES:
                if stack is None:
                    progress(f"bench: {name} needs the benchmark's own stack (leave out --edge)")
                    continue
                progress("bench: seeding one device with a day of readings for the series read")
                day_start, day_end = seed_day(stack.service_env()["CJ_TSDB_DATABASE_URL"])
                spec = dataclasses.replace(
                    spec,
                    path=series_path(
                        "device-0000", day_start, day_end, "1m", names.SERIES_AGGREGATES
                    ),
                )
            progress(f"bench: {name}")
            spec = dataclasses.replace(spec, token=target.token)
            if stack is not None and result.scenarios and not args.keep_broker:
                # One watcher for the whole run: its stream carries on across the swap (the
                # watch reader reads the new bus from its start, ADR 21).
                fresh_bus(stack)
            profiler = _profiler(args, stack, stamp, name, spec.duration) if stack else None
            with (
                (
                    supervised(stack, args.broker_max_rss_mb)
                    if stack is not None and name == names.SOAK and args.broker_max_rss_mb > 0
                    else contextlib.nullcontext()
                ),
                edge_without_auth(stack)
                if stack is not None and name == AUTH_OFF
                else contextlib.nullcontext(),
            ):
                scenario = run_scenario(
                    name,
                    spec,
                    target,
                    work / "load",
                    procs=procs,
                    ceiling=ceil,
                    measure_e2e=spec.mode not in ("query-http", "series-http"),
                )
            if profiler is not None:
                hot_spots.append(format_hot_spots(name, profiler.finish()))
            result.scenarios.append(scenario)
            p99 = scenario.accept_latency_ms["p99"]
            progress(f"bench: {name}: {scenario.accepted_per_s:,.0f}/s, p99 {p99:.1f} ms")
        if rx is not None:
            result.config["webhooks_received"] = rx.count()
        if watcher is not None:
            seen = watcher.snapshot()
            result.config["watcher"] = {"events": seen.events, "cuts": seen.cuts}
    finally:
        if watcher is not None:
            watcher.stop()
        if rx is not None:
            rx.stop()
        if stack is not None:
            stack.stop()
    path = args.out / f"bench-{stamp}.json"
    result.save(path)
    chart(result, path.with_suffix(".png"))
    print(summary_table(result))
    for text in hot_spots:
        print("\n" + text)
    note = auth_cost_note(result)
    if note:
        print("\n" + note)
    print(f"\nresults: {path}\nchart:   {path.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
