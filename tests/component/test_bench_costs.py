"""The benchmark's cost per event (bench/costs.py) against real processes, PostgreSQL and the
broker: the figures the capacity model in docs/performance.md is built from."""

from __future__ import annotations

import subprocess
import sys
import time

import psycopg
from confluent_kafka import Producer

from bench.costs import LOAD, CostMeter, Costs, cpu_delta, message_bytes
from bench.report import capacity_table, cost_table, predicted_max
from bench.results import BenchResult, ScenarioResult
from services.cli.embedded import EmbeddedBroker
from tests.support import unique

BURN = "x = 0\nfor i in range(3_000_000): x += i\nprint('done', flush=True)\ninput()\n"


def test_cpu_of_a_stage_is_what_its_processes_spent_between_the_readings() -> None:
    # A real process that burns a fixed amount of CPU, then waits: its CPU time is counted
    # once, in its own stage, and not in the load generators' stage (the test process).
    child = subprocess.Popen(
        [sys.executable, "-c", BURN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        meter = CostMeter({"worker": child.pid}, None, None)
        meter.start()
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "done"
        costs = meter.stop(events=1000)
    finally:
        child.kill()
        child.wait()
    assert costs.events == 1000
    # 3 M additions take well over 10 ms of CPU on any machine; per event that is > 10 us.
    assert costs.cpu_us["worker"] > 10
    assert LOAD in costs.cpu_us
    assert costs.wal_bytes is None and costs.bus_bytes is None  # no probes asked for


def test_a_stages_idle_floor_is_measured_first_and_not_charged_to_the_events() -> None:
    # The idle window sees a spinning process's floor and a waiting one's nothing; the
    # waiting one, busy in the scenario, is charged what it spent.
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    worker = subprocess.Popen(
        [sys.executable, "-c", "input()\n" + BURN],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        meter = CostMeter({"spinner": spinner.pid, "worker": worker.pid}, None, None)
        meter.start(idle_s=1.0)
        assert worker.stdin is not None and worker.stdout is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
        assert worker.stdout.readline().strip() == "done"
        costs = meter.stop(events=1000)
    finally:
        for p in (spinner, worker):
            p.kill()
            p.wait()
    assert costs.idle_cores["spinner"] > 0.01  # it spun (a share of a busy core, at least)
    assert costs.idle_cores["worker"] < 0.05  # it waited for its input
    assert costs.cpu_us["worker"] > 10


def test_cpu_delta_counts_new_processes_from_zero_and_tells_reused_pids_apart() -> None:
    before = {"pg": {(10, 1.0): 5.0, (11, 1.0): 2.0}}
    after = {
        "pg": {
            (10, 1.0): 7.5,  # same process: 2.5 s more
            (11, 9.0): 0.5,  # pid 11 reused by a new process: all of its 0.5 s
            (12, 9.0): 1.0,  # a new backend
        },
        "relay": {(20, 3.0): 4.0},  # a stage not seen before
    }
    assert cpu_delta(before, after) == {"pg": 4.0, "relay": 4.0}


def test_wal_and_transactions_per_event_come_from_the_database(database: str) -> None:
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int, body text)")
    meter = CostMeter({}, database, None)
    meter.start()
    with psycopg.connect(database, autocommit=True) as conn:
        for i in range(100):
            conn.execute("INSERT INTO t VALUES (%s, %s)", (i, "x" * 1000))
    costs = meter.stop(events=100)
    assert costs.wal_bytes is not None and costs.wal_bytes >= 1000  # each row's 1 kB body
    assert costs.pg_transactions is not None and costs.pg_transactions >= 1.0


def test_bus_bytes_are_the_size_of_the_messages_sent_since_the_start(
    broker: EmbeddedBroker,
) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    # A topic of its own: the session's broker is shared, and other modules read the
    # platform's topics from the start, expecting event envelopes.
    topic = unique("bench-costs")
    old = b"o" * 5000
    producer.produce(topic, key=b"k", value=old)
    producer.flush(30)
    since_ms = int(time.time() * 1000) + 1
    while int(time.time() * 1000) <= since_ms:  # the next message's timestamp is later
        time.sleep(0.001)
    key = unique("dev").encode()
    for _ in range(10):
        producer.produce(topic, key=key, value=b"v" * 300, headers=[("trace", b"abcd")])
    producer.flush(30)
    size = message_bytes(broker.bootstrap, since_ms, topics=(topic,))
    assert size == len(key) + 300 + len("trace") + 4


def test_the_cost_table_prints_stages_in_pipeline_order_and_the_cpu_bound_prediction() -> None:
    costs = Costs(
        events=10_000,
        seconds=10,
        cpu_us={"relay": 100.0, "envoy": 120.0, "postgres": 240.0, LOAD: 40.0},
        wal_bytes=2500.0,
        pg_transactions=0.02,
        bus_bytes=410.0,
    )
    assert costs.stack_cpu_us() == 460.0
    assert predicted_max(costs, cores=2) == 4000.0  # 2 cores / 500 us per event
    scenario = ScenarioResult(
        name="http-max",
        kind="http",
        target_rate=None,
        duration_s=10,
        events=10_000,
        accepted_per_s=1000.0,
        errors={},
        accept_latency_ms={},
        e2e_latency_ms={},
        ticks=[],
        ceiling=None,
        ratio=None,
        sustained=True,
        costs=costs,
    )
    result = BenchResult("now", {"cpus": "2"}, {}, [], [scenario])
    lines = cost_table(result)
    header = lines[1].splitlines()[0].split()
    assert header[:4] == ["scenario", "envoy", "postgres", "relay"]
    row = lines[1].splitlines()[2]
    assert "4,000 / 1,000" in row and "2,500" in row and "0.020" in row
    # The result survives its JSON form (a run compared later, on another day).
    again = ScenarioResult.from_dict(scenario.to_dict())
    assert again.costs == costs


def test_the_capacity_model_scales_each_stage_by_its_cost_per_event() -> None:
    costs = Costs(
        events=50_000,
        seconds=10,
        cpu_us={"relay": 30.0, "postgres": 60.0, LOAD: 500.0},
        wal_bytes=1048.576,  # 1 MiB/s at 1,000/s ... 10 MiB/s at 10,000/s (with 2**20 B)
        pg_transactions=0.01,
        bus_bytes=400.0,
    )
    scenario = ScenarioResult(
        name="grpc-batch-max",
        kind="grpc-batch",
        target_rate=None,
        duration_s=10,
        events=50_000,
        accepted_per_s=5000.0,
        errors={},
        accept_latency_ms={},
        e2e_latency_ms={},
        ticks=[],
        ceiling=None,
        ratio=None,
        sustained=True,
        costs=costs,
    )
    lines = capacity_table(BenchResult("now", {"cpus": "2"}, {}, [], [scenario]), [10_000])
    assert "grpc-batch path" in lines[0]
    header, _, row = lines[1].splitlines()
    assert header.split() == [
        "events/s",
        "postgres",
        "relay",
        "cores",
        "WAL",
        "MiB/s",
        "PG",
        "xact/s",
        "bus",
        "MiB/s",
    ]
    # 10,000/s x 60 us = 0.6 cores busy = 1.0 core at 60 %; relay 0.5; the load is no stage.
    assert row.split() == ["10,000", "1.0", "0.5", "1.5", "10.0", "100", "3.8"]
