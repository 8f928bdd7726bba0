"""Load generator process: drives the stack at a fixed arrival rate (open loop) or as fast as
a fixed number of in-flight requests allows (closed loop), and records every latency.

Open-loop latency is measured from each request's *scheduled* send time, so a stalled server
cannot hide its stall by slowing the client down (no coordinated omission). Run several of
these processes side by side; each writes a JSON file the harness merges.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import uvloop
from cornjacket.v1 import ingestion_pb2, ingestion_pb2_grpc
from google.protobuf import struct_pb2

from bench.mqtt_client import MqttConnection
from services.infra.runtime import freeze_heap

MODES = ("http", "grpc-unary", "grpc-batch", "query-http", "series-http", "mqtt")
# Every load event carries payload.m = n % MATCH_MODULUS: the orchestrator's benchmark rules
# (bench/webhooks.py) test it, so a known share of the load matches them.
MATCH_FIELD = "m"
MATCH_MODULUS = 100
# MQTT devices log in as this user (client ids "bench-<worker>-<n>") with the password in
# this environment variable when it is set (the harness's users file; not on a command line).
MQTT_USER = "bench"
MQTT_PASSWORD_ENV = "BENCH_MQTT_PASSWORD"


@dataclass
class LoadSpec:
    mode: str
    target: str  # host:port
    rate: float  # events (or queries) per second for this process; 0 = closed loop
    concurrency: int  # closed loop: requests in flight; open loop: cap on in-flight
    # mqtt: the number of simulated devices (connections); publishes go round-robin.
    duration: float
    batch: int = 100
    aggregates: int = 1000
    payload_bytes: int = 64
    probe_every: int = 0  # every Nth request carries one probe event (0 = none)
    run_id: str = "run"
    worker: int = 0
    start_at: float = 0.0  # wall-clock start, shared by all workers of a scenario
    token: str = ""  # bearer token for the edge ("" = none: an insecure edge or the no-op)
    path: str = ""  # series-http: the GET path every request reads


@dataclass
class LoadResult:
    worker: int
    requests: int = 0
    events_ok: int = 0
    sched: list[float] = field(default_factory=list)  # seconds from start, per OK request
    lat_ms: list[float] = field(default_factory=list)
    events: list[int] = field(default_factory=list)  # events carried by each OK request
    errors: dict[str, int] = field(default_factory=dict)
    err_sched: list[float] = field(default_factory=list)
    probes: list[tuple[str, float]] = field(default_factory=list)  # (aggregate, wall send time)


class HttpConnection:
    """Minimal HTTP/1.1 keep-alive client: enough for a load generator, and cheap per call."""

    def __init__(self, host: str, port: int, token: str = "") -> None:
        self.host, self.port = host, port
        self.auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"{self.auth}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {
                k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
            }
            if "content-length" in headers:
                data = await self.reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding") == "chunked":
                data = await self._chunked()
            else:
                data = b""
            if headers.get("connection") == "close":
                self.writer.close()
            return status, data
        except (asyncio.IncompleteReadError, ConnectionError):
            self.writer.close()
            raise

    async def _chunked(self) -> bytes:
        assert self.reader is not None
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readline()).strip(), 16)
            chunk = await self.reader.readexactly(size + 2)
            if size == 0:
                return b"".join(parts)
            parts.append(chunk[:-2])


def _payload(value: float, pad: str, n: int) -> dict[str, Any]:
    body: dict[str, Any] = {"value": value, "unit": "C", MATCH_FIELD: n % MATCH_MODULUS}
    if pad:
        body["pad"] = pad
    return body


def reading(n: int) -> float:
    """Event n's sensor value: a bounded, deterministic noise in [20, 30). Not n itself: a
    device's readings were a counter, which the inference service rightly scores anomalous
    after ~1,100 readings per device (most of them from there on), so a long run would carry
    a flood of ai.anomaly events that is no user's load (tests/unit/test_bench_loadgen.py)."""
    return 20.0 + ((n * 7919) % 997) / 100.0


def pb_payload(value: float, pad: str, n: int | None = None) -> struct_pb2.Value:
    fields = {
        "value": struct_pb2.Value(number_value=value),
        "unit": struct_pb2.Value(string_value="C"),
    }
    if n is not None:
        fields[MATCH_FIELD] = struct_pb2.Value(number_value=n % MATCH_MODULUS)
    if pad:
        fields["pad"] = struct_pb2.Value(string_value=pad)
    return struct_pb2.Value(struct_value=struct_pb2.Struct(fields=fields))


class Driver:
    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.result = LoadResult(worker=spec.worker)
        host, _, port = spec.target.rpartition(":")
        self.host, self.port = host, int(port)
        self.pad = "x" * max(0, spec.payload_bytes - 30)
        self.seq = 0
        self.pool: asyncio.Queue[HttpConnection] = asyncio.Queue()
        self.channel: grpc.aio.Channel | None = None
        self.stub: ingestion_pb2_grpc.IngestionServiceStub | None = None
        self.devices: list[MqttConnection] = []

    def _aggregate(self, n: int) -> tuple[str, bool]:
        s = self.spec
        if s.probe_every and n % s.probe_every == 0:
            return f"probe-{s.run_id}-{s.worker}-{n}", True
        return f"bench-{(n * 7919 + s.worker) % s.aggregates}", False

    async def setup(self) -> None:
        if self.spec.mode == "mqtt":
            for d in range(self.spec.concurrency):
                dev = MqttConnection(
                    self.host,
                    self.port,
                    f"{MQTT_USER}-{self.spec.worker}-{d}",
                    MQTT_USER if os.environ.get(MQTT_PASSWORD_ENV) else "",
                    os.environ.get(MQTT_PASSWORD_ENV, ""),
                )
                await dev.connect()
                self.devices.append(dev)
            return
        for _ in range(self.spec.concurrency):
            self.pool.put_nowait(HttpConnection(self.host, self.port, self.spec.token))
        if self.spec.mode.startswith("grpc"):
            self.metadata = (
                (("authorization", f"Bearer {self.spec.token}"),) if self.spec.token else ()
            )
            self.channel = grpc.aio.insecure_channel(self.spec.target)
            self.stub = ingestion_pb2_grpc.IngestionServiceStub(self.channel)

    async def one(self, n: int) -> int:
        """Send request number n; return how many events it carried; raise on failure."""
        mode = self.spec.mode
        if mode == "query-http":
            conn = await self.pool.get()
            try:
                agg = f"bench-{n % self.spec.aggregates}"
                status, _ = await conn.request("GET", f"/api/v1/projections/sensor_state/{agg}")
            finally:
                self.pool.put_nowait(conn)
            if status != 200:
                raise _Failed(f"http {status}")
            return 1
        if mode == "series-http":
            conn = await self.pool.get()
            try:
                status, _ = await conn.request("GET", self.spec.path)
            finally:
                self.pool.put_nowait(conn)
            if status != 200:
                raise _Failed(f"http {status}")
            return 1
        if mode == "mqtt":
            agg, probe = self._aggregate(n)
            body = json.dumps(_payload(reading(n), self.pad, n)).encode()
            if probe:
                self.result.probes.append((agg, time.time()))
            device = self.devices[n % len(self.devices)]
            await device.publish(f"cornjacket/v1/events/sensor.reading/{agg}", body)
            return 1
        if mode == "http":
            agg, probe = self._aggregate(n)
            body = json.dumps(
                {
                    "event_type": "sensor.reading",
                    "aggregate_id": agg,
                    "payload": _payload(reading(n), self.pad, n),
                }
            ).encode()
            if probe:
                self.result.probes.append((agg, time.time()))
            conn = await self.pool.get()
            try:
                status, _ = await conn.request("POST", "/api/v1/events", body)
            finally:
                self.pool.put_nowait(conn)
            if status != 202:
                raise _Failed(f"http {status}")
            return 1
        assert self.stub is not None
        if mode == "grpc-unary":
            agg, probe = self._aggregate(n)
            if probe:
                self.result.probes.append((agg, time.time()))
            await self.stub.IngestEvent(
                ingestion_pb2.IngestEventRequest(
                    event_type="sensor.reading",
                    aggregate_id=agg,
                    payload=pb_payload(reading(n), self.pad, n),
                ),
                timeout=30,
                metadata=self.metadata,
            )
            return 1
        events = []
        for k in range(self.spec.batch):
            agg, probe = self._aggregate(n * self.spec.batch + k)
            if probe:
                self.result.probes.append((agg, time.time()))
            events.append(
                ingestion_pb2.IngestEventRequest(
                    event_type="sensor.reading",
                    aggregate_id=agg,
                    payload=pb_payload(
                        reading(n * self.spec.batch + k), self.pad, n * self.spec.batch + k
                    ),
                )
            )
        resp = await self.stub.IngestEvents(
            ingestion_pb2.IngestEventsRequest(events=events), timeout=30, metadata=self.metadata
        )
        if resp.rejected:
            raise _Failed("rejected in batch")
        return int(resp.accepted)

    async def timed(self, n: int, t0: float, sched: float) -> None:
        """Run request n; its latency counts from its scheduled time ``t0 + sched``."""
        r = self.result
        r.requests += 1
        try:
            events = await self.one(n)
        except _Failed as e:
            r.errors[str(e)] = r.errors.get(str(e), 0) + 1
            r.err_sched.append(sched)
            return
        except grpc.aio.AioRpcError as e:
            r.errors[f"grpc {e.code().name}"] = r.errors.get(f"grpc {e.code().name}", 0) + 1
            r.err_sched.append(sched)
            return
        except (OSError, asyncio.IncompleteReadError) as e:
            key = type(e).__name__
            r.errors[key] = r.errors.get(key, 0) + 1
            r.err_sched.append(sched)
            return
        r.events_ok += events
        r.sched.append(sched)
        r.events.append(events)
        r.lat_ms.append((time.perf_counter() - (t0 + sched)) * 1000)

    async def run(self) -> LoadResult:
        await self.setup()
        s = self.spec
        delay = s.start_at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        t0 = time.perf_counter()
        if s.rate > 0:
            await self._open_loop(t0)
        else:
            await self._closed_loop(t0)
        if self.channel is not None:
            await self.channel.close()
        for dev in self.devices:
            await dev.close()
        return self.result

    async def _open_loop(self, t0: float) -> None:
        s = self.spec
        per_request = s.batch if s.mode == "grpc-batch" else 1
        interval = per_request / s.rate
        total = int(s.duration / interval)
        inflight: set[asyncio.Task[None]] = set()
        for n in range(total):
            sched = n * interval
            wait = t0 + sched - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            if len(inflight) >= s.concurrency:
                # The server fell this far behind: count it rather than queue without bound.
                self.result.errors["client backlog"] = (
                    self.result.errors.get("client backlog", 0) + 1
                )
                self.result.err_sched.append(sched)
                continue
            task = asyncio.create_task(self.timed(n, t0, sched))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
        if inflight:
            await asyncio.wait(inflight, timeout=60)

    async def _closed_loop(self, t0: float) -> None:
        s = self.spec
        end = t0 + s.duration
        counter = iter(range(1 << 62))

        async def lane() -> None:
            while time.perf_counter() < end:
                start = time.perf_counter()
                await self.timed(next(counter), t0, start - t0)

        await asyncio.gather(*(lane() for _ in range(s.concurrency)))


class _Failed(Exception):
    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", required=True, help="JSON LoadSpec")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    spec = LoadSpec(**json.loads(args.spec))
    if spec.mode not in MODES:
        raise SystemExit(f"--spec mode must be one of {', '.join(MODES)}")
    # As in the services: a full collection over the start-up heap would pause the sender,
    # and open-loop latency would count the pause.
    freeze_heap()
    result = uvloop.run(Driver(spec).run())
    args.out.write_text(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
