"""`make bench-actions`: webhook delivery throughput and event -> webhook latency.

Starts its own stack (as `make run`, on free ports, in a scratch data dir) with the
orchestrator's rate limit and dedupe window off, a fast local receiver (stdlib threaded
HTTP server, in this process), and one rule matching the benchmark's event type. Then:

- burst: N events through Envoy's batch route as fast as possible; deliveries per second
  from the first to the last webhook received;
- paced: R events per second for D seconds; latency from the event's ``ingested_at`` (the
  platform clock at acceptance) to the webhook's arrival, p50/p99.

Both ends run on this machine, so the figures include the receiver's share of the CPUs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.webhooks import FastReceiver, create_rule, wait_for
from services.cli.stack import Stack, settings_on_free_ports


def burst(http: httpx.Client, rx: FastReceiver, event_type: str, n: int) -> dict[str, Any]:
    start = rx.count()
    batch = 250
    t0 = time.time()
    for i in range(0, n, batch):
        events = [
            {"event_type": event_type, "aggregate_id": f"b-{j % 64}", "payload": {"i": j}}
            for j in range(i, min(n, i + batch))
        ]
        r = http.post("/api/v1/events:batch", json={"events": events})
        r.raise_for_status()
    sent = time.time() - t0
    complete = wait_for(rx, start + n, timeout=max(120.0, n / 20))
    got = rx.since(start)
    arrivals = sorted(a for a, _ in got)
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
    return {
        "events": n,
        "delivered": len(got),
        "complete": complete,
        "ingest_seconds": round(sent, 2),
        "delivery_seconds": round(span, 2),
        "deliveries_per_second": round((len(got) - 1) / span, 1) if span > 0 else None,
        "end_to_end_seconds": round(arrivals[-1] - t0, 2) if arrivals else None,
    }


def paced(
    http: httpx.Client, rx: FastReceiver, event_type: str, rate: float, seconds: float
) -> dict[str, Any]:
    start = rx.count()
    n = int(rate * seconds)
    t0 = time.monotonic()
    for i in range(n):
        due = t0 + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        r = http.post(
            "/api/v1/events",
            json={"event_type": event_type, "aggregate_id": f"p-{i % 16}", "payload": {"i": i}},
        )
        r.raise_for_status()
    complete = wait_for(rx, start + n, timeout=60)
    latencies = sorted((a - ingested) * 1000 for a, ingested in rx.since(start))
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [float("nan")] * 99
    return {
        "events": n,
        "rate_per_second": rate,
        "delivered": len(latencies),
        "complete": complete,
        "latency_ms_p50": round(q[49], 1),
        "latency_ms_p99": round(q[98], 1),
        "latency_ms_max": round(latencies[-1], 1) if latencies else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.actions", description=__doc__)
    parser.add_argument("--events", type=int, default=2000, help="burst size (default 2000)")
    parser.add_argument("--rate", type=float, default=20.0, help="paced events/s (default 20)")
    parser.add_argument("--seconds", type=float, default=15.0, help="paced duration (15)")
    parser.add_argument("--workers", type=int, default=32, help="CJ_ACTIONS_WORKERS (32)")
    parser.add_argument("--out", default="", help="also write the JSON result here")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="cj-bench-actions-"))
    rx = FastReceiver()
    stack = Stack(
        settings_on_free_ports(work),
        extra_env={
            "CJ_LOG_LEVEL": "warning",
            "CJ_ACTIONS_RATE_LIMIT_PER_MINUTE": "0",
            "CJ_ACTIONS_DEDUPE_WINDOW": "0",
            "CJ_ACTIONS_WORKERS": str(args.workers),
            "CJ_ACTIONS_ENDPOINT_CONCURRENCY": str(args.workers),
            "CJ_ACTIONS_POLL_TIMEOUT": "100ms",
            # The local receiver: an intended internal target (allow-listed).
            "CJ_ACTIONS_ALLOWED_TARGETS": "127.0.0.1",
        },
        say=lambda m: print(f"bench: {m}", file=sys.stderr, flush=True),
    )
    try:
        stack.start()
        headers = {"Authorization": f"Bearer {stack.admin_token}"}
        with httpx.Client(base_url=stack.edge_url, timeout=30, headers=headers) as http:
            event_type = "bench.delivery"
            create_rule(http, "bench", event_type, rx.url("/hook"))
            # Warm up: connections, the consumer's assignment, the pools.
            paced(http, rx, event_type, rate=10, seconds=2)
            result = {
                "machine_cpus": __import__("os").cpu_count(),
                "workers": args.workers,
                "burst": burst(http, rx, event_type, args.events),
                "paced": paced(http, rx, event_type, args.rate, args.seconds),
            }
    finally:
        stack.stop()
        rx.stop()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    b, p = result["burst"], result["paced"]
    print(
        f"\nwebhooks: {b['deliveries_per_second']} deliveries/s (burst of {b['events']}); "
        f"event->webhook latency at {p['rate_per_second']:g}/s: "
        f"p50 {p['latency_ms_p50']} ms, p99 {p['latency_ms_p99']} ms",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
