"""What the consumers' fetch linger (issue 20, ADR 23) saves: broker CPU and consumer batches.

`python -m bench.fetch_linger [--rounds N] [--idle S] [--load S] [--rate R]` starts the embedded
broker alone with the stack's topics and five consumers shaped like the stack's (event handler,
orchestrator, time-series writer, inference, one live-stream reader: their topics and each its
own group, each in a process of its own), built by ``consumer_config`` as the services build
theirs; every mode gets a fresh broker. Each round runs them
twice, interleaved: with every consumer at linger 0 (10 ms fetches, the behaviour before issue
20) and with the defaults (CJ_*_FETCH_LINGER). In each, the broker's CPU is measured idle and
while ``--rate`` small events/s go to sensor-events, and each consumer's batches (one database
transaction each in the services) and producer timestamp -> poll delay are counted.

Indicative only: on a shared machine the figures move from run to run; compare A and B of the
same round.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped, unused-ignore]
from confluent_kafka import Consumer, Producer

from services.cli.embedded import EmbeddedBroker
from services.cli.processes import free_port
from services.config.settings import (
    ActionsSettings,
    Env,
    EventHandlerSettings,
    InferenceSettings,
    TsdbSettings,
    WatchSettings,
)
from services.core.events import ALL_TOPICS
from services.infra.kafka import consumer_config, ensure_topics

SENSOR = "sensor-events"


def stack_consumers() -> list[tuple[str, tuple[str, ...], float]]:
    """(name, topics, default linger) of the stack's consumers, from their settings."""
    env = Env({})
    return [
        ("handler", tuple(ALL_TOPICS), EventHandlerSettings.from_env(env).fetch_linger),
        ("actions", tuple(ALL_TOPICS), ActionsSettings.from_env(env).fetch_linger),
        ("tsdb", (SENSOR,), TsdbSettings.from_env(env).fetch_linger),
        ("inference", (SENSOR,), InferenceSettings.from_env(env).fetch_linger),
        ("watch", tuple(ALL_TOPICS), WatchSettings.from_env(env).fetch_linger),
    ]


def read(
    name: str,
    bootstrap: str,
    topics: tuple[str, ...],
    linger: float,
    ready: Any,
    stop: Any,
    out: Any,
) -> None:
    """One consumer in a process of its own, as in the stack; the consumer loop's poll: wait
    for a first message, then take what is fetched. Sends back (time, batch size, delays)."""
    latest: dict[str, Any] = {"auto.offset.reset": "latest"}
    consumer = Consumer(
        consumer_config(bootstrap, f"{name}-{time.monotonic_ns()}", fetch_linger=linger, **latest)
    )
    consumer.subscribe(list(topics))
    while not consumer.assignment():
        consumer.poll(0.1)
    ready.set()
    batches: list[tuple[float, int, list[float]]] = []
    while not stop.is_set():
        first = consumer.poll(0.5)
        if first is None or first.error():
            continue
        msgs = [first, *consumer.consume(499, timeout=0)]
        now = time.time()
        batches.append((now, len(msgs), [now * 1000 - m.timestamp()[1] for m in msgs]))
    consumer.close()
    out.send(batches)


def cores(broker: psutil.Process, seconds: float, rate: float, producer: Producer) -> float:
    """The broker's cores over ``seconds`` while ``rate`` small events/s go to sensor-events."""
    stop = threading.Event()

    def paced() -> None:
        i = 0
        t0 = time.monotonic()
        while not stop.is_set():
            producer.produce(SENSOR, key=f"d{i % 200}".encode(), value=b"x" * 300)
            producer.poll(0)
            i += 1
            stop.wait(max(0.0, t0 + i / rate - time.monotonic()))
        producer.flush(10)

    thread = threading.Thread(target=paced) if rate > 0 else None
    cpu0, t0 = sum(broker.cpu_times()[:2]), time.monotonic()
    if thread is not None:
        thread.start()
    time.sleep(seconds)
    stop.set()
    if thread is not None:
        thread.join()
    return float((sum(broker.cpu_times()[:2]) - cpu0) / (time.monotonic() - t0))


def run_mode(label: str, lingers: bool, args: argparse.Namespace) -> None:
    """A broker of its own (Tansu slows down as it retains), five consumer processes."""
    broker = EmbeddedBroker(free_port(), Path(tempfile.mkdtemp(prefix="cj-linger-")) / "b.log")
    broker.start()
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    workers = []
    try:
        ensure_topics(broker.bootstrap, list(ALL_TOPICS), 3)
        pid = broker.child.pid if broker.child is not None else None
        assert pid is not None, "the broker did not start"
        proc = psutil.Process(pid)
        for name, topics, linger in stack_consumers():
            linger = linger if lingers else 0.0
            ready = ctx.Event()
            mine, theirs = ctx.Pipe(duplex=False)
            p = ctx.Process(
                target=read, args=(name, broker.bootstrap, topics, linger, ready, stop, theirs)
            )
            p.start()
            workers.append((name, linger, p, ready, mine))
        for _, _, _, ready, _ in workers:
            ready.wait(60)
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 2, "acks": "all"})
        time.sleep(1.0)
        idle = cores(proc, args.idle, 0, producer)
        load_from = time.time()
        loaded = cores(proc, args.load, args.rate, producer)
        load_to = time.time()
        stop.set()
        results = {name: mine.recv() for name, _, _, _, mine in workers}
    finally:
        stop.set()
        for _, _, p, _, _ in workers:
            p.join(10)
        broker.stop()
    print(f"{label}: broker idle {idle:.3f} cores, at {args.rate:g}/s {loaded:.3f} cores")
    for name, linger, _, _, _ in workers:
        batches = [b for b in results[name] if load_from <= b[0] <= load_to]
        messages = sum(n for _, n, _ in batches)
        delays = sorted(d for _, _, ds in batches for d in ds)
        p50 = statistics.median(delays) if delays else float("nan")
        p99 = delays[int(len(delays) * 0.99)] if delays else float("nan")
        print(
            f"  {name:9s} linger {linger * 1000:4.0f} ms:"
            f" {len(batches) / args.load:6.1f} batches/s,"
            f" {messages / max(1, len(batches)):5.1f} per batch, delay p50 {p50:5.1f} ms"
            f" p99 {p99:5.1f} ms",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds idle per mode")
    parser.add_argument("--load", type=float, default=8.0, help="seconds under load per mode")
    parser.add_argument("--rate", type=float, default=300.0, help="events/s under load")
    args = parser.parse_args()
    for i in range(args.rounds):
        run_mode(f"round {i + 1} A (all linger 0)", False, args)
        run_mode(f"round {i + 1} B (defaults)", True, args)
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
