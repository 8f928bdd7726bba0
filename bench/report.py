"""Turn a BenchResult into what a person reads: a text summary, a PNG chart, a progress line.

The summary ends with the performance targets, each PASS/FAIL/n.a. with the measured value, so
that a run answers "are we there?" without opening the JSON. The chart shows the same run over
time, because an average hides a backlog that grows or a latency that degrades late.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import names
from bench.costs import LOAD, Costs
from bench.results import BenchResult, ScenarioResult, Tick
from bench.sampler import memory_growth

# A soak is "memory flat" when no process tree grew by more than this (median of the last
# third minus median of the first third of its PSS, or RSS where PSS is unknown): the larger
# of an absolute allowance (caches, pools and allocator slack warming up) and a fraction of
# its starting size.
SOAK_RSS_GROWTH_MB = 32.0
SOAK_RSS_GROWTH_FRACTION = 0.10
# A fixed-rate scenario must reach this fraction of its target for its latency to count.
RATE_REACHED = 0.95
# Issue 20, target 2: HTTP single events, closed loop, at least this fraction of C.
HTTP_MAX_RATIO = 0.30
# A consumer group "keeps up" when its lag is back to at most this after the drain (the
# inference service's ai.anomaly events may still be in flight).
LAG_SETTLED = 0
POSTGRES = "postgres"  # the process tree whose memory allowance includes shared_buffers
# The embedded broker (Tansu, in memory) keeps the bus's retention in its memory by design;
# `cornjacket up` (and the soak) swap it for an empty one past CJ_BROKER_MAX_RSS_MB. With a
# swap threshold its memory is judged bounded, not flat: its highest RSS over the soak must
# stay within the threshold plus SOAK_RSS_GROWTH_MB (the supervisor checks every few
# seconds, so it may overshoot by what the bus takes meanwhile). Without one (0) it is
# judged flat like the others.
BROKER = "broker"


@dataclass
class TargetCheck:
    """One performance target: PASS, FAIL or n.a., and what was measured."""

    target: str
    status: str
    measured: str


def _fmt_num(v: float | None, digits: int = 0) -> str:
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def _fmt_ms(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def _lat(d: dict[str, float], key: str) -> float | None:
    return d.get(key) if d.get("count", 0) > 0 else None


def _yes_no(v: bool | None) -> str:
    return "-" if v is None else ("yes" if v else "NO")


def _errors(s: ScenarioResult) -> str:
    total = sum(s.errors.values())
    if total == 0:
        return "0"
    top = max(s.errors.items(), key=lambda kv: kv[1])
    return f"{total:,} ({top[0]}{'...' if len(s.errors) > 1 else ''})"


def _rate_reached(s: ScenarioResult) -> bool:
    return s.target_rate is None or s.accepted_per_s >= RATE_REACHED * s.target_rate


def _against(result: BenchResult, s: ScenarioResult) -> str:
    """ "vs C = 3,632 req/s" (or "... NOT MEASURED, default"): the ceiling a check used."""
    if not s.ceiling:
        return "no ceiling"
    c = result.ceiling(s.ceiling)
    if c is None:
        return f"{s.ceiling} not in the result"
    short = {names.C: "C", names.U: "U"}.get(c.name, c.name)
    note = "" if c.measured else " NOT MEASURED, default"
    return f"vs {short} = {c.value:,.0f} {c.unit}{note}"


def _rate(result: BenchResult, s: ScenarioResult) -> str:
    got = f"{s.accepted_per_s:,.0f}/s"
    if s.target_rate:
        got += f" of {s.target_rate:,.0f}/s"
    ratio = f" = {s.ratio:.2f} x" if s.ratio is not None else ""
    return f"{s.name}: {got}{ratio} ({_against(result, s)})"


def _verdict(problems: list[str]) -> str:
    return "FAIL" if problems else "PASS"


def _missing(target: str, name: str) -> TargetCheck:
    return TargetCheck(target, "n.a.", f"{name} not run")


def _limit(
    problems: list[str], what: str, value: float | None, limit: float, unit: str = "ms"
) -> str:
    """ "what X unit" and a problem when X is missing or above ``limit``."""
    if value is None:
        problems.append(f"no {what} samples")
        return f"{what} -"
    if value > limit:
        problems.append(f"{what} > {limit:g} {unit}")
    return f"{what} {_fmt_ms(value)} {unit}"


def _check_batch(result: BenchResult) -> TargetCheck:
    target = (
        f"1. gRPC batch at {names.BATCH_U:g} x U: sustained, every group keeps up, "
        "e2e p99 <= 250 ms"
    )
    s = result.scenario(names.BATCH)
    if s is None:
        return _missing(target, names.BATCH)
    problems: list[str] = []
    if not _rate_reached(s):
        problems.append("rate not reached")
    if s.sustained is not True:
        problems.append("NOT sustained")
    behind = {g: lag for g, lag in s.group_lag_after.items() if lag is None or lag > LAG_SETTLED}
    if not s.group_lag_after:
        problems.append("no per-group lag measured")
    elif behind:
        problems.append(
            "groups behind after the drain: " + ", ".join(f"{g} {v}" for g, v in behind.items())
        )
    e2e = _limit(problems, "send->projection p99", _lat(s.e2e_latency_ms, "p99"), 250)
    lags = ", ".join(f"{g} {v}" for g, v in s.group_lag_after.items()) or "-"
    measured = f"{_rate(result, s)}; {e2e}; lag after the drain: {lags}"
    if problems:
        measured += "; " + "; ".join(problems)
    return TargetCheck(target, _verdict(problems), measured)


def _check_http_max(result: BenchResult) -> TargetCheck:
    target = f"2. HTTP closed loop >= {HTTP_MAX_RATIO:.2f} x C, sustained"
    s = result.scenario(names.HTTP_MAX)
    if s is None:
        return _missing(target, names.HTTP_MAX)
    problems: list[str] = []
    if s.ratio is None or s.ratio < HTTP_MAX_RATIO:
        problems.append(f"below {HTTP_MAX_RATIO:.2f} x C")
    if s.sustained is not True:
        problems.append("NOT sustained")
    measured = _rate(result, s)
    if problems:
        measured += "; " + "; ".join(problems)
    return TargetCheck(target, _verdict(problems), measured)


def _fixed(
    result: BenchResult,
    target: str,
    name: str,
    limits: Sequence[tuple[str, str, float]],
) -> TargetCheck:
    """A fixed-rate scenario: the rate reached, no errors, each (what, field, limit ms)."""
    s = result.scenario(name)
    if s is None:
        return _missing(target, name)
    problems: list[str] = []
    if not _rate_reached(s):
        problems.append("rate not reached")
    if sum(s.errors.values()):
        problems.append(f"{_errors(s)} errors")
    parts = [
        _limit(problems, what, _lat(getattr(s, field), "p99"), limit)
        for what, field, limit in limits
    ]
    measured = f"{_rate(result, s)}; " + ", ".join(parts)
    if problems:
        measured += "; " + "; ".join(problems)
    return TargetCheck(target, _verdict(problems), measured)


def _check_http_fixed(result: BenchResult) -> TargetCheck:
    return _fixed(
        result,
        f"3. HTTP at {names.FIXED_C:g} x C: accept p99 <= 10 ms, e2e p99 <= 50 ms",
        names.HTTP_FIXED,
        [("accept p99", "accept_latency_ms", 10), ("send->projection p99", "e2e_latency_ms", 50)],
    )


def _check_query(result: BenchResult) -> TargetCheck:
    return _fixed(
        result,
        f"4a. GetProjection at {names.FIXED_C:g} x C: p99 <= 5 ms",
        names.QUERY,
        [("p99", "accept_latency_ms", 5)],
    )


def _check_series(result: BenchResult) -> TargetCheck:
    return _fixed(
        result,
        f"4b. series 24 h/1 m (avg) at {names.SERIES_C:g} x C: p99 <= 20 ms",
        names.SERIES,
        [("p99", "accept_latency_ms", 20)],
    )


def _check_mqtt(result: BenchResult) -> TargetCheck:
    return _fixed(
        result,
        f"5. MQTT at {names.FIXED_C:g} x C, {names.MQTT_DEVICES} devices: PUBACK p99 <= 20 ms, "
        "e2e p99 <= 60 ms",
        names.MQTT_FIXED,
        [
            ("PUBACK p99", "accept_latency_ms", 20),
            ("publish->projection p99", "e2e_latency_ms", 60),
        ],
    )


def pg_allowance_mb(shared_buffers_mb: float | None) -> float:
    """What PostgreSQL's PSS may grow by over the soak on top of the usual allowance:
    its shared_buffers as it reports it (``SHOW shared_buffers``). Backends touching the
    buffer pool map its pages, which grows the tree's PSS up to the pool's size once; that
    is warm-up, not a leak. Unknown (None): no extra allowance."""
    return shared_buffers_mb or 0.0


def broker_bound(s: ScenarioResult, max_rss_mb: float) -> tuple[float, float]:
    """(highest broker RSS MB over the soak, the bound): see BROKER."""
    peak = max((t.procs[BROKER].rss_mb for t in s.ticks if BROKER in t.procs), default=0.0)
    return peak, max_rss_mb + SOAK_RSS_GROWTH_MB


def soak_growth(s: ScenarioResult, broker_max_rss_mb: float = 0) -> dict[str, tuple[float, float]]:
    """Per process tree: (memory growth MB, allowed growth MB) over a scenario's ticks: PSS
    median of the last third minus that of the first; the allowance is the larger of
    SOAK_RSS_GROWTH_MB and SOAK_RSS_GROWTH_FRACTION of the start, plus, for PostgreSQL,
    pg_allowance_mb(its shared_buffers). With a broker swap threshold the broker's entry is
    (highest RSS, threshold + allowance) instead (BROKER)."""
    growth = memory_growth(s.ticks)
    first_third = s.ticks[: max(1, len(s.ticks) // 3)]
    out: dict[str, tuple[float, float]] = {}
    for name, g in growth.items():
        if name == BROKER and broker_max_rss_mb > 0:
            out[name] = broker_bound(s, broker_max_rss_mb)
            continue
        start = [t.procs[name].memory_mb for t in first_third if name in t.procs]
        base = sorted(start)[len(start) // 2] if start else 0.0
        allowed = max(SOAK_RSS_GROWTH_MB, SOAK_RSS_GROWTH_FRACTION * base)
        if name == POSTGRES:
            allowed += pg_allowance_mb(s.pg_shared_buffers_mb)
        out[name] = (g, allowed)
    return out


def _check_soak(result: BenchResult) -> TargetCheck:
    target = (
        f"6. soak at {names.SOAK_C:g} x C: memory flat (PSS thirds), no error, "
        "e2e p99 outside broker swaps <= 100 ms"
    )
    s = result.scenario(names.SOAK)
    if s is None:
        return _missing(target, names.SOAK)
    max_rss = result.config.get("broker_max_rss_mb")
    broker_max = float(max_rss) if isinstance(max_rss, (int, float)) else 0.0
    growth = soak_growth(s, broker_max)
    if len(s.ticks) < 6 or not growth:
        return TargetCheck(target, "n.a.", f"soak has too few samples ({len(s.ticks)} ticks)")
    problems: list[str] = []
    grew = {n: (g, a) for n, (g, a) in growth.items() if g > a}
    bounded = BROKER in grew and broker_max > 0
    over = grew.pop(BROKER) if bounded else None
    if grew:
        problems.append(
            "grew: " + ", ".join(f"{n} {g:+.0f} MB (allowed {a:.0f})" for n, (g, a) in grew.items())
        )
    if over:
        problems.append(f"broker RSS reached {over[0]:.0f} MB (bound {over[1]:.0f})")
    if sum(s.errors.values()):
        problems.append(f"{_errors(s)} errors")
    outside = s.e2e_outside_swaps_ms if s.swaps else s.e2e_latency_ms
    e2e = _limit(problems, "send->projection p99 outside swaps", _lat(outside, "p99"), 100)
    swaps = f"{len(s.swaps)} broker swaps"
    if s.swaps:
        spans = ", ".join(f"{a:.0f}-{b:.0f}s" for a, b in s.swaps)
        swaps += (
            f" (each with the backlog it left: {spans}; "
            f"e2e p99 in them {_fmt_ms(_lat(s.e2e_in_swaps_ms, 'p99'))} ms)"
        )
    pg = growth.get(POSTGRES)
    pg_text = (
        f"; postgres {pg[0]:+.0f} MB of {pg[1]:.0f} allowed (shared_buffers "
        f"{_fmt_num(s.pg_shared_buffers_mb)} MB)"
        if pg
        else ""
    )
    broker = growth.get(BROKER)
    broker_text = (
        f"; broker peak RSS {broker[0]:.0f} MB of {broker[1]:.0f} (swapped past {broker_max:.0f})"
        if broker and broker_max > 0
        else ""
    )
    measured = f"{_rate(result, s)}; {e2e}; {swaps}{pg_text}{broker_text}"
    if problems:
        measured += "; " + "; ".join(problems)
    return TargetCheck(target, _verdict(problems), measured)


# Target 7: the stages an event of each path passes, each its own process tree.
PATH_STAGES = {
    "http": (
        "envoy",
        "ingestion",
        "postgres",
        "relay",
        "broker",
        "eventhandler",
        "actions",
        "tsdb",
        "inference",
        "query",
    ),
    "grpc-batch": (
        "envoy",
        "ingestion",
        "postgres",
        "relay",
        "broker",
        "eventhandler",
        "actions",
        "tsdb",
        "inference",
        "query",
    ),
}


def _check_costs(result: BenchResult) -> TargetCheck:
    target = "7. CPU per event per stage, HTTP and batch paths, beside the no-op ceilings"
    problems: list[str] = []
    found: list[str] = []
    for kind, stages in PATH_STAGES.items():
        runs = [s for s in result.scenarios if s.kind == kind and s.costs and s.events > 0]
        if not runs:
            problems.append(f"no {kind} scenario with costs")
            continue
        s = max(runs, key=lambda r: r.events)
        assert s.costs is not None
        lost = [k for k in stages if k not in s.costs.cpu_us]
        if lost:
            problems.append(f"{s.name} lacks {', '.join(lost)}")
        found.append(f"{kind}: {s.name} {_fmt_num(s.costs.stack_cpu_us())} us/event")
    floors = [c.name for c in result.ceilings if c.cpu_us]
    if not floors:
        problems.append("no ceiling CPU per call")
    measured = "; ".join(found) + (f"; floors: {', '.join(floors)}" if floors else "")
    if problems:
        return TargetCheck(target, "n.a.", measured + "; " + "; ".join(problems))
    return TargetCheck(target, "PASS", measured + " (table above)")


TARGETS: list[Callable[[BenchResult], TargetCheck]] = [
    _check_batch,
    _check_http_max,
    _check_http_fixed,
    _check_query,
    _check_series,
    _check_mqtt,
    _check_soak,
    _check_costs,
]


def check_targets(result: BenchResult) -> list[TargetCheck]:
    """Every target of issue 20, judged on this result."""
    return [check(result) for check in TARGETS]


def summary_table(result: BenchResult) -> str:
    """Ceilings, throughput, latency and the targets as plain text (fits 120 columns)."""
    out: list[str] = [f"Cornjacket benchmark, started {result.started_at}"]
    if result.machine:
        out.append("machine: " + ", ".join(f"{k}={v}" for k, v in result.machine.items()))
    out.append("")

    if result.ceilings:
        out.append("Ceilings")
        rows = [[c.name, _fmt_num(c.value), c.unit, c.detail] for c in result.ceilings]
        out.append(_table(["name", "value", "unit", "detail"], rows, right={1}))
        out.append("")

    if result.scenarios:
        out.append("Throughput")
        rows = []
        for s in result.scenarios:
            vs = "-"
            if s.ratio is not None and s.ceiling:
                vs = f"{s.ratio:.2f} x {s.ceiling}"
            rows.append(
                [
                    s.name,
                    s.kind,
                    "closed" if s.target_rate is None else _fmt_num(s.target_rate),
                    f"{s.duration_s:.0f}",
                    _fmt_num(s.events),
                    _fmt_num(s.accepted_per_s),
                    _errors(s),
                    _yes_no(s.sustained),
                    vs,
                ]
            )
        headers = ["scenario", "kind", "target/s", "secs", "events", "accepted/s", "errors"]
        headers += ["sustained", "vs ceiling"]
        out.append(_table(headers, rows, right={2, 3, 4, 5}))
        out.append("")

        out.append("Latency (ms)           accept / request                send -> projection")
        rows = []
        for s in result.scenarios:
            a, e = s.accept_latency_ms, s.e2e_latency_ms
            rows.append(
                [s.name]
                + [_fmt_ms(_lat(a, k)) for k in ("p50", "p95", "p99", "max")]
                + [_fmt_ms(_lat(e, k)) for k in ("p50", "p95", "p99", "max")]
            )
        headers = ["scenario", "p50", "p95", "p99", "max", "e2e p50", "e2e p95", "e2e p99"]
        headers += ["e2e max"]
        out.append(_table(headers, rows, right=set(range(1, 9))))
        costs = cost_table(result)
        if costs:
            out.append("")
            out.extend(costs)
            out.append("")
            out.extend(capacity_table(result))
        notes = [(s.name, n) for s in result.scenarios for n in s.notes]
        if notes:
            out.append("")
            out.append("Notes")
            out.extend(f"  {name}: {note}" for name, note in notes)
        out.append("")

    out.append("Targets")
    checks = check_targets(result)
    width = max(len(c.target) for c in checks)
    out.extend(f"  {c.status:<4}  {c.target:<{width}}  {c.measured}" for c in checks)
    return "\n".join(out) + "\n"


def _positive(values: Sequence[float]) -> list[float]:
    """Log axes cannot show 0 (a second without samples): plot those as gaps."""
    return [v if v > 0 else float("nan") for v in values]


def chart(result: BenchResult, path: Path) -> None:
    """Write a PNG: one row per scenario with ticks, four panels over time.

    Panels: events accepted/s (with the target rate), accept p50/p99 on a log axis, outbox
    depth with consumer lag on a twin axis, and CPU% per process tree (100% = one core).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = [s for s in result.scenarios if s.ticks]
    rows = max(1, len(scenarios))
    fig, axes = plt.subplots(rows, 4, figsize=(22, 3.6 * rows), squeeze=False)
    fig.suptitle(f"Cornjacket benchmark, {result.started_at}", fontsize=14)
    if not scenarios:
        for ax in axes[0]:
            ax.axis("off")
        axes[0][0].text(0.0, 0.5, "no scenario recorded ticks", fontsize=14)
    for row, s in zip(axes, scenarios, strict=False):
        _chart_row(row, s)
    fig.tight_layout(rect=(0, 0, 1, 0.97 if rows > 1 else 0.93))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _chart_row(row: Sequence[object], s: ScenarioResult) -> None:
    from matplotlib.axes import Axes
    from matplotlib.ticker import FuncFormatter

    ax_rate, ax_lat, ax_queue, ax_cpu = (a for a in row if isinstance(a, Axes))
    ticks: list[Tick] = s.ticks
    t = [tk.t for tk in ticks]
    rate = "closed loop" if s.target_rate is None else f"target {s.target_rate:,.0f}/s"
    label = f"{s.name} ({s.kind}, {rate})"

    ax_rate.plot(t, [tk.accepted for tk in ticks], label="accepted/s", color="tab:blue")
    if any(tk.errors for tk in ticks):
        ax_rate.plot(t, [tk.errors for tk in ticks], label="errors/s", color="tab:red")
    if s.target_rate is not None:
        ax_rate.axhline(s.target_rate, color="grey", linestyle="--", label="target")
    ax_rate.set_title(f"{label}\nevents accepted per second", fontsize=10)
    ax_rate.set_ylim(bottom=0)
    ax_rate.legend(loc="lower right", fontsize=8)

    ax_lat.plot(t, _positive([tk.accept_p50_ms for tk in ticks]), label="p50", color="tab:green")
    ax_lat.plot(t, _positive([tk.accept_p99_ms for tk in ticks]), label="p99", color="tab:orange")
    if any(tk.accept_p50_ms > 0 or tk.accept_p99_ms > 0 for tk in ticks):
        ax_lat.set_yscale("log")
        # Plain numbers (0.5, 2, 10, 50) instead of 5x10^-1, and only 2s and 5s in between.
        ax_lat.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax_lat.yaxis.set_minor_formatter(
            FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else "")
        )
    ax_lat.set_title(f"{s.name}: accept latency (ms, log)", fontsize=10)
    ax_lat.legend(loc="upper left", fontsize=8)

    depth = [float("nan") if tk.outbox_depth is None else tk.outbox_depth for tk in ticks]
    lag = [float("nan") if tk.consumer_lag is None else tk.consumer_lag for tk in ticks]
    ax_queue.plot(t, depth, color="tab:purple", label="outbox depth")
    ax_queue.set_ylabel("outbox rows", color="tab:purple")
    ax_queue.set_ylim(bottom=0)
    ax_lag = ax_queue.twinx()
    ax_lag.plot(t, lag, color="tab:brown", linestyle="--", label="consumer lag")
    ax_lag.set_ylabel("consumer lag (msgs)", color="tab:brown")
    ax_lag.set_ylim(bottom=0)
    sustained = {True: "sustained", False: "NOT sustained", None: "sustained: n.a."}[s.sustained]
    ax_queue.set_title(f"{s.name}: outbox depth / consumer lag ({sustained})", fontsize=10)
    lines = ax_queue.get_lines() + ax_lag.get_lines()
    ax_queue.legend(lines, [str(ln.get_label()) for ln in lines], loc="upper left", fontsize=8)

    names = sorted({n for tk in ticks for n in tk.procs})
    for name in names:
        ax_cpu.plot(
            t,
            [tk.procs[name].cpu_percent if name in tk.procs else float("nan") for tk in ticks],
            label=name,
        )
    ax_cpu.set_title(f"{s.name}: CPU % per process tree (100 = 1 core)", fontsize=10)
    ax_cpu.set_ylim(bottom=0)
    if names:
        ax_cpu.legend(loc="upper left", fontsize=8, ncol=2)

    for ax in (ax_rate, ax_lat, ax_queue, ax_cpu):
        ax.set_xlabel("seconds")
        ax.grid(True, alpha=0.3)


def progress(line: str, *, done: bool = False) -> None:
    """One status line: rewritten in place on a terminal, one line per call otherwise.

    ``done=True`` ends the line on a terminal, so that the next output starts on its own line.
    Logs and CI capture stay readable because nothing but plain lines goes to a non-TTY.
    """
    stream = sys.stderr
    if stream.isatty():
        width = shutil.get_terminal_size((120, 20)).columns - 1
        stream.write("\r" + line.rstrip("\n")[:width] + "\x1b[K" + ("\n" if done else ""))
    else:
        stream.write(line.rstrip("\n") + "\n")
    stream.flush()


AUTH_ON, AUTH_OFF = "http-max", "http-max-noauth"
AUTH_COST_GOAL = 0.10


def auth_cost_note(result: BenchResult) -> str | None:
    """The closing note on what edge authentication costs: HTTP accepted/s of the closed
    loop with authentication (http-max) and without it (http-max-noauth, same stack, Envoy
    rendered without jwt_authn/RBAC) in the same run; None unless both ran."""
    on, off = result.scenario(AUTH_ON), result.scenario(AUTH_OFF)
    if on is None or off is None:
        return None
    if off.accepted_per_s <= 0:
        return f"auth cost: no events accepted without authentication ({AUTH_OFF}); no ratio"
    ratio = on.accepted_per_s / off.accepted_per_s
    cost = 1 - ratio
    head = (
        f"auth cost: HTTP accepted/s with authentication {_fmt_num(on.accepted_per_s)}, "
        f"without {_fmt_num(off.accepted_per_s)} (ratio {ratio:.3f}): "
    )
    if cost < 0:
        return head + "faster with authentication: the run's noise exceeds its cost; run again"
    verdict = "within" if cost < AUTH_COST_GOAL else "ABOVE"
    return head + (
        f"authentication costs {cost:.1%} of HTTP throughput, {verdict} the "
        f"{AUTH_COST_GOAL:.0%} goal"
    )


# Stages in the order an event passes them; anything else measured goes after them.
STAGE_ORDER = (
    "envoy",
    "ingestion",
    "mqtt",
    "postgres",
    "relay",
    "broker",
    "eventhandler",
    "actions",
    "tsdb",
    "inference",
    "query",
)
# Column names of the stages in the cost table (issue 20's words).
STAGE_LABELS = {
    "eventhandler": "handler",
    "actions": "orchestrator",
    "tsdb": "tsdb writer",
    "inference": "AI",
    "query": "watch/query",
    "mqtt": "MQTT gw",
}


def predicted_max(costs: Costs, cores: int) -> float | None:
    """Events/s the box could accept if its cores were the only limit: every core busy with
    the measured CPU per event (stack and load generators together)."""
    total = costs.stack_cpu_us() + costs.cpu_us.get(LOAD, 0.0)
    return cores * 1e6 / total if total > 0 else None


def cost_table(result: BenchResult) -> list[str]:
    """CPU per accepted event per stage (microseconds), WAL bytes, PostgreSQL transactions and
    bus bytes per event; for closed-loop scenarios, the CPU-bound prediction beside the
    measured rate (the check of the capacity model against this machine)."""
    measured = [s for s in result.scenarios if s.costs is not None and s.events > 0]
    if not measured:
        return []
    seen = {k for s in measured if s.costs for k in s.costs.cpu_us}
    stages = [k for k in STAGE_ORDER if k in seen]
    stages += sorted(seen - set(stages) - {LOAD})
    cores = int(result.machine.get("cpus") or os.cpu_count() or 1)
    rows = []
    # The no-op ceilings first: CPU per call of the no-op servicer (in ingestion's column)
    # and of Envoy (issue 20, target 7: each stage's cost over its floor is visible).
    for ceiling in result.ceilings:
        if ceiling.cpu_us:
            floor = {k: v for k, v in ceiling.cpu_us.items() if k != LOAD}
            rows.append(
                [f"[ceiling] {ceiling.name}"]
                + [_fmt_num(floor[k]) if k in floor else "" for k in stages]
                + [_fmt_num(sum(floor.values())), _fmt_num(ceiling.cpu_us.get(LOAD))]
                + ["", "", "", ""]
            )
    for s in measured:
        c = s.costs
        assert c is not None
        predicted = predicted_max(c, cores) if s.target_rate is None else None
        rows.append(
            [s.name]
            + [_fmt_num(c.cpu_us[k]) if k in c.cpu_us else "-" for k in stages]
            + [
                _fmt_num(c.stack_cpu_us()),
                _fmt_num(c.cpu_us.get(LOAD, 0.0)),
                "-" if c.wal_bytes is None else _fmt_num(c.wal_bytes),
                "-" if c.pg_transactions is None else f"{c.pg_transactions:.3f}",
                "-" if c.bus_bytes is None else _fmt_num(c.bus_bytes),
                "-"
                if predicted is None
                else f"{_fmt_num(predicted)} / {_fmt_num(s.accepted_per_s)}",
            ]
        )
    headers = ["scenario", *(STAGE_LABELS.get(k, k) for k in stages), "stack", LOAD]
    headers += ["WAL B", "PG xact", "bus B"]
    headers += [f"CPU-bound max / measured ({cores} cores)"]
    out = [
        "Cost per accepted event over each stage's idle floor (CPU in us, load + drain; WAL"
        " bytes, PostgreSQL transactions and bus bytes per event); [ceiling] rows: CPU per"
        " call of the no-op servicer (ingestion's column) and Envoy",
        _table(headers, rows, right=set(range(1, len(headers)))),
    ]
    for s in measured:
        if s.costs and s.costs.idle_cores:
            idle = ", ".join(f"{k} {v:.2f}" for k, v in s.costs.idle_cores.items())
            out.append(f"  idle floor before {s.name} (cores): {idle}")
    return out


# What a stage's cores may be busy with in a deployment sized by the model: headroom for
# bursts, rebalances and a replica's failure.
UTILISATION = 0.6
CAPACITY_RATES = (10_000, 100_000, 1_000_000)


def capacity_table(result: BenchResult, rates: Sequence[int] = CAPACITY_RATES) -> list[str]:
    """The capacity model from this run's costs: cores per stage at UTILISATION, PostgreSQL
    WAL and transaction rates and bus bandwidth, for each rate, per measured closed-loop or
    fixed-rate scenario kind (the HTTP single-event path and the gRPC batch path cost
    differently, so each is its own model). The load generators are not a stage."""
    out: list[str] = []
    best: dict[str, ScenarioResult] = {}
    for s in result.scenarios:
        if s.costs is None or s.events <= 0 or s.kind not in ("http", "grpc-batch", "mqtt"):
            continue
        if s.kind not in best or s.events > best[s.kind].events:  # the most events: the
            best[s.kind] = s  # steadiest per-event figures
    for kind, s in best.items():
        c = s.costs
        assert c is not None
        stages = [k for k in STAGE_ORDER if k in c.cpu_us]
        stages += sorted(set(c.cpu_us) - set(stages) - {LOAD})
        rows = []
        for rate in rates:
            cores = {k: rate * c.cpu_us[k] / 1e6 / UTILISATION for k in stages}
            rows.append(
                [f"{rate:,}"]
                + [f"{cores[k]:.1f}" for k in stages]
                + [
                    f"{sum(cores.values()):.1f}",
                    "-" if c.wal_bytes is None else f"{rate * c.wal_bytes / 2**20:,.1f}",
                    "-" if c.pg_transactions is None else f"{rate * c.pg_transactions:,.0f}",
                    "-" if c.bus_bytes is None else f"{rate * c.bus_bytes / 2**20:,.1f}",
                ]
            )
        headers = ["events/s", *stages, "cores", "WAL MiB/s", "PG xact/s", "bus MiB/s"]
        out.append(
            f"Capacity model, {kind} path (costs of {s.name}; cores at {UTILISATION:.0%} busy)"
        )
        out.append(_table(headers, rows, right=set(range(1, len(headers)))))
        out.append("")
    return out[:-1] if out else out
