"""What the consumers' fetch linger (issue 20, ADR 23) saves: broker CPU and consumer batches.

`python -m bench.fetch_linger [--rounds N] [--idle S] [--load S] [--rate R]` starts the embedded
broker alone with the stack's topics and five consumers shaped like the stack's (event handler,
orchestrator, time-series writer, inference, one live-stream reader: their topics and each its
own group), built by ``consumer_config`` as the services build theirs. Each round runs them
twice, interleaved: with every consumer at linger 0 (10 ms fetches, the behaviour before issue
20) and with the defaults (CJ_*_FETCH_LINGER). In each, the broker's CPU is measured idle and
while ``--rate`` small events/s go to sensor-events, and each consumer's batches (one database
transaction each in the services) and producer timestamp -> poll delay are counted.

Indicative only: on a shared machine the figures move from run to run; compare A and B of the
same round.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
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


@dataclass
class Reader:
    name: str
    linger: float
    consumer: Consumer
    batches: int = 0
    messages: int = 0
    delays: list[float] = field(default_factory=list)


def read(reader: Reader, stop: threading.Event) -> None:
    """The consumer loop's poll: wait for a first message, then take what is fetched."""
    while not stop.is_set():
        first = reader.consumer.poll(0.5)
        if first is None or first.error():
            continue
        msgs = [first, *reader.consumer.consume(499, timeout=0)]
        now = time.time() * 1000
        reader.batches += 1
        reader.messages += len(msgs)
        reader.delays += [now - m.timestamp()[1] for m in msgs if not m.error()]


def phase(
    broker: psutil.Process, readers: list[Reader], producer: Producer, rate: float, seconds: float
) -> tuple[float, dict[str, tuple[int, int, list[float]]]]:
    """Broker cores over ``seconds`` at ``rate`` events/s; each reader's batches, messages
    and delays."""
    start = {r.name: (r.batches, r.messages, len(r.delays)) for r in readers}
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
    cpu0 = sum(broker.cpu_times()[:2])
    t0 = time.monotonic()
    if thread is not None:
        thread.start()
    time.sleep(seconds)
    stop.set()
    if thread is not None:
        thread.join()
    cores = (sum(broker.cpu_times()[:2]) - cpu0) / (time.monotonic() - t0)
    out = {}
    for r in readers:
        b, m, d = start[r.name]
        out[r.name] = (r.batches - b, r.messages - m, r.delays[d:])
    return cores, out


def run_mode(
    label: str, bootstrap: str, broker: psutil.Process, lingers: bool, args: argparse.Namespace
) -> None:
    readers = []
    for name, topics, linger in stack_consumers():
        linger = linger if lingers else 0.0
        consumer = Consumer(
            consumer_config(
                bootstrap,
                f"{name}-{time.monotonic_ns()}",
                fetch_linger=linger,
                **{"auto.offset.reset": "latest"},
            )
        )
        consumer.subscribe(list(topics))
        readers.append(Reader(name, linger, consumer))
    for r in readers:  # join their groups before measuring
        while not r.consumer.assignment():
            r.consumer.poll(0.1)
    stop = threading.Event()
    threads = [threading.Thread(target=read, args=(r, stop)) for r in readers]
    for t in threads:
        t.start()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 2, "acks": "all"})
    try:
        time.sleep(1.0)
        idle, _ = phase(broker, readers, producer, 0, args.idle)
        loaded, counts = phase(broker, readers, producer, args.rate, args.load)
    finally:
        stop.set()
        for t in threads:
            t.join()
        for r in readers:
            r.consumer.close()
    print(f"{label}: broker idle {idle:.3f} cores, at {args.rate:g}/s {loaded:.3f} cores")
    for r in readers:
        batches, messages, delays = counts[r.name]
        delays.sort()
        p50 = statistics.median(delays) if delays else float("nan")
        p99 = delays[int(len(delays) * 0.99)] if delays else float("nan")
        print(
            f"  {r.name:9s} linger {r.linger * 1000:4.0f} ms: {batches / args.load:6.1f} batches/s,"
            f" {messages / max(1, batches):5.1f} per batch, delay p50 {p50:5.1f} ms"
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
    broker = EmbeddedBroker(free_port(), Path(tempfile.mkdtemp(prefix="cj-linger-")) / "b.log")
    broker.start()
    try:
        ensure_topics(broker.bootstrap, list(ALL_TOPICS), 3)
        pid = broker.child.pid if broker.child is not None else None
        assert pid is not None, "the broker did not start"
        proc = psutil.Process(pid)
        for i in range(args.rounds):
            run_mode(f"round {i + 1} A (all linger 0)", broker.bootstrap, proc, False, args)
            run_mode(f"round {i + 1} B (defaults)", broker.bootstrap, proc, True, args)
        print(f"load average {os.getloadavg()}")
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
