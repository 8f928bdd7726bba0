"""The bus's own latency floor on this machine (issue 18's speed goals).

`python -m bench.bus_floor [--fetch-wait MS] [--preload N]` starts the embedded broker alone,
produces one message every 20 ms with the relay's producer settings (idempotent, acks all,
linger 2 ms) and consumes them with the services' consumer settings (services/infra/kafka.py
``consumer_config``), and prints producer timestamp -> poll p50/p90/p99. ``--preload`` puts N
messages in the topic first (the consumer starts at its end), as the ai-latency scenario's
warm-up does. Compare with the inference service's
``cornjacket_inference_bus_delay_seconds`` under load.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer

from services.cli.embedded import EmbeddedBroker
from services.cli.processes import free_port
from services.infra.kafka import consumer_config, ensure_topics

PACED = b"paced"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fetch-wait", type=int, default=10, help="fetch.wait.max.ms (10)")
    parser.add_argument("--preload", type=int, default=0, help="messages in the topic first")
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    broker = EmbeddedBroker(free_port(), Path(tempfile.mkdtemp(prefix="cj-bus-")) / "broker.log")
    broker.start()
    try:
        ensure_topics(broker.bootstrap, ["floor"], 4)
        producer = Producer(
            {
                "bootstrap.servers": broker.bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 2,
            }
        )
        for i in range(args.preload):
            while True:
                try:
                    producer.produce("floor", key=str(i % 1000).encode(), value=b"x" * 300)
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
        producer.flush(120)
        consumer = Consumer(
            consumer_config(
                broker.bootstrap,
                "floor",
                **{"fetch.wait.max.ms": args.fetch_wait, "auto.offset.reset": "latest"},
            )
        )
        consumer.subscribe(["floor"])
        while not consumer.assignment():
            consumer.poll(0.1)
        stop = threading.Event()

        def paced() -> None:
            i = 0
            while not stop.is_set():
                producer.produce("floor", key=str(i % 50).encode(), value=PACED + b"x" * 300)
                producer.poll(0)
                i += 1
                stop.wait(0.02)
            producer.flush(10)

        thread = threading.Thread(target=paced)
        thread.start()
        delays: list[float] = []
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            m = consumer.poll(0.5)
            if m is None or m.error() or not (m.value() or b"").startswith(PACED):
                continue
            delays.append(time.time() * 1000 - m.timestamp()[1])
        stop.set()
        thread.join()
        consumer.close()
        delays.sort()
        n = len(delays)
        print(
            f"bus floor (fetch.wait.max.ms={args.fetch_wait}, preload {args.preload:,}):"
            f" {n} messages, producer timestamp -> poll p50 {delays[n // 2]:.1f} ms,"
            f" p90 {delays[int(n * 0.9)]:.1f} ms, p99 {delays[int(n * 0.99)]:.1f} ms;"
            f" load average {os.getloadavg()}"
        )
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
