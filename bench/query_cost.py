"""GetProjection's CPU per call, variant against variant (issue 20, target 4a): a measurement
script, not a test and not part of `make bench`.

Starts one stack (as the benchmark does: free ports, a scratch data dir, authentication on,
one watcher on the live tail), seeds the projections the load reads, then runs rounds of
``query-http`` load (bench/loadgen.py, open loop at ``--rate``). Before each round the files
that differ between the variants (git refs; WORKTREE: the files as they are now; dir:PATH:
those with the files under PATH laid over them, for experiments) are
written into the checkout, the query process and Envoy are restarted with them, and a few
seconds of warm-up pass. Rounds interleave (A B A B ...) so a busy neighbour on a shared
machine hurts both variants alike. At the end the checkout's files are put back as found.

Per round it prints the latency percentiles and the CPU per request of Envoy, the query
process, PostgreSQL and the load generator (the kernel's counters; bench/costs.py).
``--profile SECONDS`` records py-spy (``--gil``: only samples holding the GIL, so the time
the query process's own threads compete for it) of the query process in every round.

    .venv/bin/python -m bench.query_cost --variant base=HEAD~1 --variant new=WORKTREE \
        --rounds 4 --rate 341 --duration 20
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.__main__ import BenchStack, own_target
from bench.costs import CostMeter
from bench.loadgen import LoadSpec
from bench.results import percentiles
from bench.scenarios import IDLE_S, run_load, seed_projections
from bench.watcher import Watcher
from services.cli import stack as stack_module
from services.cli.processes import wait_until
from services.cli.stack import settings_on_free_ports

ROOT = Path(__file__).resolve().parent.parent
WORKTREE = "WORKTREE"
# What the variants may differ in: the query process's code and Envoy's configuration.
_PARTS = ("services", "envoy")


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


def _files(refs: list[str]) -> list[str]:
    """Files under _PARTS that differ between any of the refs (WORKTREE: the checkout;
    dir:PATH: the checkout with the files under PATH laid over it)."""
    changed: set[str] = set()
    commits = [r for r in refs if r != WORKTREE and not r.startswith("dir:")]
    for r in refs:
        if r.startswith("dir:"):
            base = Path(r[4:])
            changed |= {str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()}
    for r in commits:
        changed |= set(_git("diff", "--name-only", r, "--", *_PARTS).split())
    for a in commits:
        for b in commits:
            if a < b:
                changed |= set(_git("diff", "--name-only", a, b, "--", *_PARTS).split())
    return sorted(changed)


def _content(ref: str, path: str, found: dict[str, bytes | None]) -> bytes | None:
    if ref.startswith("dir:"):
        laid = Path(ref[4:]) / path
        return laid.read_bytes() if laid.is_file() else found[path]
    if ref == WORKTREE:
        return found[path]
    try:
        return subprocess.run(
            ["git", "show", f"{ref}:{path}"], cwd=ROOT, check=True, capture_output=True
        ).stdout
    except subprocess.CalledProcessError:
        return None  # not in that ref


def _write(files: dict[str, bytes | None]) -> None:
    for path, data in files.items():
        p = ROOT / path
        if data is None:
            p.unlink(missing_ok=True)
        else:
            p.write_bytes(data)


def _switch(stack: BenchStack, jwks: Path | None) -> None:
    """Restart the query process and Envoy with the files now in the checkout."""
    query = stack.services["query"]
    query.stop()
    query.start()
    envoy_config = importlib.reload(importlib.import_module("services.cli.envoy_config"))
    stack_module.render = envoy_config.render  # type: ignore[attr-defined]
    stack.envoy.stop()
    stack.envoy.config_path.write_text(stack.envoy_config(jwks))
    stack.envoy.start()
    # Not /health: an experiment may leave out the Lua filter that answers it.
    url = f"{stack.edge_url}/api/v1/projections/sensor_state/bench-0"
    headers = {"Authorization": f"Bearer {stack.admin_token}"}

    def answers() -> bool:
        try:
            return httpx.get(url, headers=headers, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(answers, 90, what="GetProjection to answer after the switch")


def _threads(pid: int) -> dict[str, float]:
    """CPU seconds so far of each thread of a process, summed by thread name (grpc's and
    librdkafka's native threads are invisible to py-spy but not to the kernel)."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def _profile(
    pid: int, out: Path, seconds: float, delay: float, native: bool = False
) -> subprocess.Popen[bytes]:
    py_spy = str(Path(sys.executable).parent / "py-spy")
    # --native needs the process paused per sample (no --nonblocking) and every thread.
    mode = "--native" if native else "--nonblocking --gil"
    cmd = (
        f"sleep {delay:.1f}; exec {py_spy} record --pid {pid} --duration {int(seconds)} "
        f"--rate 200 {mode} --format raw --output {out}"
    )
    return subprocess.Popen(["sh", "-c", cmd], stdout=subprocess.DEVNULL)


def floor(rate: float, duration: float, work: Path) -> None:
    """The floors at this rate: POST /api/v1/events through an Envoy rendered like the
    benchmark's no-op ceiling (no authentication) to the no-op servicer, open loop at
    ``rate`` (the ceilings are measured closed loop, where one wake-up serves many calls)."""
    from services.cli.embedded import EmbeddedEnvoy
    from services.cli.envoy_config import render
    from services.cli.processes import Child, free_port, port_open

    port, edge, admin = free_port(), free_port(), free_port()
    noop = Child(
        "noop",
        [sys.executable, "-m", "bench.noop_server", "--port", str(port)],
        log_path=work / "noop.log",
    )
    work.mkdir(parents=True, exist_ok=True)
    noop.start()
    config = work / "envoy-noop.yaml"
    config.write_text(
        render(
            edge_port=edge,
            admin_port=admin,
            upstreams={n: ("127.0.0.1", port) for n in ("ingestion", "query", "eventhandler")},
        )
    )
    envoy = EmbeddedEnvoy(config, work / "envoy-noop.log")
    try:
        wait_until(lambda: port_open("127.0.0.1", port), 30, what="no-op server", child=noop)
        envoy.start()
        wait_until(lambda: port_open("127.0.0.1", edge), 30, what="Envoy for the no-op server")
        assert noop.pid is not None and envoy.child is not None and envoy.child.pid is not None
        spec = LoadSpec("http", f"127.0.0.1:{edge}", rate, 200, 3.0)
        run_load(spec, 1, work / "load", label="floor-warmup")
        for r in range(2):
            meter = CostMeter({"noop": noop.pid, "envoy": envoy.child.pid}, None, None)
            meter.start(idle_s=IDLE_S)
            spec.duration = duration
            merged = run_load(spec, 1, work / "load", label=f"floor-{r}")
            costs = meter.stop(merged.events_ok)
            row = {
                "variant": "noop-floor",
                "round": r,
                "ok": merged.events_ok,
                "errors": merged.errors,
                "latency_ms": percentiles(merged.lat_ms),
                "cpu_us": costs.cpu_us,
            }
            print("query_cost: " + json.dumps(row), flush=True)
    finally:
        envoy.stop()
        noop.stop()


def micro(db_url: str, calls: int) -> None:
    """The query process's own steps in this process, without gRPC: CPU per call of each
    (time.process_time over ``calls`` calls, after as many to warm up)."""

    import uvloop

    from services.infra.postgres import open_pool
    from services.query.grpc_api import to_proto
    from services.query.projection_reader import PostgresProjectionReader
    from services.query.service import QueryService

    async def run() -> dict[str, float]:
        out: dict[str, float] = {}
        async with open_pool(db_url, max_size=8, acquire_timeout=5, name="micro") as pool:
            await pool.wait()
            reader = PostgresProjectionReader(pool)
            service = QueryService(reader)
            aggs = [f"bench-{n % 1000}" for n in range(calls)]

            async def checkout() -> None:
                async with pool.connection():
                    pass

            async def select1() -> None:
                async with pool.connection() as conn:
                    await conn.execute("SELECT 1")

            async def get(a: str) -> object:
                return await service.get("sensor_state", a)

            steps: dict[str, object] = {
                "pool checkout": lambda a: checkout(),
                "checkout + SELECT 1": lambda a: select1(),
                "service.get (reader)": get,
            }
            for name, step in steps.items():
                for phase in ("warm", "timed"):
                    t0 = time.process_time()
                    for a in aggs:
                        await step(a)  # type: ignore[operator]
                    if phase == "timed":
                        out[name] = (time.process_time() - t0) / calls * 1e6
            view = await get("bench-1")
            for name, fn in {
                "to_proto": lambda: to_proto(view),  # type: ignore[arg-type]
                "to_proto + serialize": lambda: to_proto(view).SerializeToString(),  # type: ignore[arg-type]
            }.items():
                t0 = time.process_time()
                for _ in range(calls):
                    fn()
                out[name] = (time.process_time() - t0) / calls * 1e6
        return out

    for name, us in uvloop.run(run()).items():
        print(f"query_cost micro: {name:28s} {us:8.1f} us/call", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", action="append", required=True, help="NAME=REF")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per variant")
    parser.add_argument("--rate", type=float, default=341.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--aggregates", type=int, default=1000)
    parser.add_argument("--profile", type=float, default=0.0, help="py-spy seconds per round")
    parser.add_argument("--native", action="store_true", help="py-spy --native, all threads")
    parser.add_argument("--no-watcher", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="cj-qcost-")))
    parser.add_argument("--floor", action="store_true", help="measure the no-op floors first")
    parser.add_argument("--micro", type=int, default=0, help="in-process steps, N calls each")
    args = parser.parse_args()
    if args.floor:
        floor(args.rate, args.duration, args.out / "floor")
    variants = dict(v.split("=", 1) for v in args.variant)
    paths = _files(list(variants.values()))
    found = {p: (ROOT / p).read_bytes() if (ROOT / p).exists() else None for p in paths}
    contents = {n: {p: _content(r, p, found) for p in paths} for n, r in variants.items()}
    print(f"query_cost: files that differ: {paths or 'none'}; out {args.out}", flush=True)
    work = args.out
    stack = BenchStack(
        settings_on_free_ports(work / "stack", start_timeout=120),
        extra_env={"CJ_LOG_LEVEL": "warning"},
        say=lambda m: print(f"stack: {m}", flush=True),
    )
    watcher: Watcher | None = None
    results: list[dict[str, object]] = []
    try:
        stack.start()
        jwks = stack.keys.jwks_path if stack.signs_tokens else None
        target = own_target(stack)
        seed_projections(target, args.aggregates)
        if args.micro:
            assert target.db_url is not None
            micro(target.db_url, args.micro)
        if not args.no_watcher:
            watcher = Watcher(target.edge, target.token)
        for r in range(args.rounds):
            for name in variants:
                _write(contents[name])
                _switch(stack, jwks)
                spec = LoadSpec(
                    "query-http",
                    target.edge,
                    args.rate,
                    200,
                    args.warmup,
                    aggregates=args.aggregates,
                    token=target.token,
                )
                run_load(spec, 1, work / "load", label=f"warmup-{name}-{r}")
                pids = {c.name: c.pid for c in stack.children() if c.pid is not None}
                meter = CostMeter(pids, None, None)  # "load": this script and its children
                spy = None
                if args.profile:
                    spy = _profile(
                        pids["query"],
                        work / f"spy-{name}-{r}.txt",
                        min(args.profile, args.duration - 2),
                        IDLE_S + 1.5 + 1,
                        args.native,
                    )
                meter.start(idle_s=IDLE_S)
                threads0 = _threads(pids["query"])
                spec.duration = args.duration
                merged = run_load(spec, 1, work / "load", label=f"{name}-{r}")
                costs = meter.stop(merged.events_ok)
                threads1 = _threads(pids["query"])
                n = max(merged.events_ok, 1)
                by_thread = {
                    k: round((v - threads0.get(k, 0.0)) / n * 1e6, 1)
                    for k, v in sorted(threads1.items(), key=lambda kv: -kv[1])
                    if v - threads0.get(k, 0.0) > 0
                }
                if spy is not None:
                    spy.wait(timeout=60)
                row = {
                    "variant": name,
                    "round": r,
                    "ok": merged.events_ok,
                    "errors": merged.errors,
                    "latency_ms": percentiles(merged.lat_ms),
                    "cpu_us": costs.cpu_us,
                    "idle_cores": costs.idle_cores,
                    "query_threads_us": by_thread,  # not net of idle
                }
                results.append(row)
                print("query_cost: " + json.dumps(row), flush=True)
    finally:
        _write(found)
        if watcher is not None:
            watcher.stop()
        stack.stop()
        (work / "results.json").write_text(json.dumps(results, indent=1))
    print(f"query_cost: results in {work / 'results.json'}")
    for name in variants:
        rows = [x for x in results if x["variant"] == name]
        for key in ("query", "envoy", "postgres", "load"):
            vals = [x["cpu_us"].get(key) for x in rows]  # type: ignore[attr-defined]
            print(f"  {name:10s} {key:9s} us/req: {vals}")
        for q in ("p50", "p99"):
            print(f"  {name:10s} {q} ms: {[x['latency_ms'][q] for x in rows]}")  # type: ignore[index]


if __name__ == "__main__":
    main()
