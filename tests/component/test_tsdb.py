"""The tsdb service as a real process: sensor events from the real broker become points,
read back over gRPC; bad reads get INVALID_ARGUMENT with the numbers; a batch redelivered to a
restarted writer changes no point and no rollup."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import psycopg
import pytest
import uuid_utils
from confluent_kafka import Consumer, Producer, TopicPartition
from cornjacket.v1 import series_pb2, series_pb2_grpc

from services.cli.embedded import EmbeddedBroker
from services.cli.processes import Child, free_port
from services.core.events import Event
from services.infra.codec import encode_event
from services.infra.kafka import ensure_topics
from tests.support import eventually, service_process, unique
from tests.tsdb_checks import rollup_mismatches, rollup_surplus

pytestmark = pytest.mark.component


class Writer:
    def __init__(
        self, brokers: str, topic: str, group: str, port: int, db: str, child: Child
    ) -> None:
        self.brokers = brokers
        self.group = group
        self.producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True})
        self.topic = topic
        self.db = db
        self.child = child
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.api = series_pb2_grpc.SeriesServiceStub(self.channel)

    def send(self, *events: Event, raw: bytes | None = None) -> None:
        if raw is not None:
            self.producer.produce(self.topic, key=b"x", value=raw)
        for e in events:
            self.producer.produce(self.topic, key=e.aggregate_id.encode(), value=encode_event(e))
        self.producer.flush(10)

    def count(self, device: str) -> int:
        with psycopg.connect(self.db) as conn:
            row = conn.execute(
                "SELECT count(*) FROM tsdb.points WHERE device = %s", (device,)
            ).fetchone()
        return int(row[0]) if row else 0


@pytest.fixture(scope="module")
def tsdb(
    database: str, broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Writer]:
    topic = unique("t-sensor")
    ensure_topics(broker.bootstrap, [topic], partitions=2)
    port = free_port()
    group = unique("group")
    env = {
        "CJ_TSDB_DATABASE_URL": database,
        "CJ_REDPANDA_BROKERS": broker.bootstrap,
        "CJ_TSDB_PORT": str(port),
        "CJ_TSDB_TOPICS": topic,
        "CJ_TSDB_CONSUMER_GROUP": group,
        "CJ_TSDB_POLL_TIMEOUT": "100ms",
        "CJ_TSDB_MAX_POINTS": "100",
    }
    logs: Path = tmp_path_factory.mktemp("tsdb-logs")
    with service_process("tsdb", env, logs, f"127.0.0.1:{port}") as child:
        w = Writer(broker.bootstrap, topic, group, port, database, child)
        yield w
        w.channel.close()


def reading(device: str, t: datetime, **fields: float) -> Event:
    return Event(str(uuid_utils.uuid7()), "sensor.reading", device, t, t, dict(fields))


def test_readings_become_series_and_poison_is_skipped(tsdb: Writer) -> None:
    device = unique("dev")
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    events = [
        reading(device, t0 + timedelta(seconds=15 * i), temp=float(i), hum=50.0) for i in range(8)
    ]
    tsdb.send(raw=b"not an envelope")  # skipped, never blocks the partition
    tsdb.send(*events)
    eventually(lambda: tsdb.count(device) == 16, timeout=30)
    answer = tsdb.api.GetSeries(
        series_pb2.GetSeriesRequest(
            device=device,
            metric="temp",
            start=t0.isoformat(),
            end=(t0 + timedelta(minutes=2)).isoformat(),
            bucket="1m",
        )
    )
    assert answer.source == "rollup_1m"
    assert answer.origin.ToDatetime(tzinfo=UTC) == t0 and answer.bucket_seconds == 60
    columns = zip(
        answer.index,
        answer.count,
        answer.sum,
        answer.min,
        answer.max,
        answer.first,
        answer.last,
        answer.avg,
        strict=True,
    )
    assert list(columns) == [
        (0, 4, 6.0, 0.0, 3.0, 0.0, 3.0, 1.5),
        (1, 4, 22.0, 4.0, 7.0, 4.0, 7.0, 5.5),
    ]
    latest = tsdb.api.GetLatest(series_pb2.GetLatestRequest(device=device))
    assert [(v.metric, v.value) for v in latest.values] == [("hum", 50.0), ("temp", 7.0)]
    assert not latest.truncated
    listed = tsdb.api.ListSeries(series_pb2.ListSeriesRequest(device_prefix=device, limit=1))
    assert [s.metric for s in listed.series] == ["hum"]
    page2 = tsdb.api.ListSeries(
        series_pb2.ListSeriesRequest(
            device_prefix=device, limit=1, page_token=listed.next_page_token
        )
    )
    assert [s.metric for s in page2.series] == ["temp"]


@pytest.mark.parametrize(
    ("start", "end", "bucket", "message"),
    [
        (
            "2026-05-01T00:00:00Z",
            "2026-05-02T00:00:00Z",
            "1m",
            "spans up to 1441 buckets; at most 100",
        ),
        ("2026-05-01T00:00:00Z", "2026-05-01T00:00:00Z", "1m", "must be before"),
        ("2026-05-01T00:00:00", "2026-05-01T01:00:00Z", "1m", "time zone"),
        ("yesterday", "2026-05-01T01:00:00Z", "1m", "not an RFC 3339 time"),
        ("2026-05-01T00:00:00Z", "2026-05-01T01:00:00Z", "2d", "outside 1s..1d"),
        ("", "2026-05-01T01:00:00Z", "1m", "start is required"),
    ],
)
def test_bad_reads_are_invalid_argument_with_the_reason(
    tsdb: Writer, start: str, end: str, bucket: str, message: str
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        tsdb.api.GetSeries(
            series_pb2.GetSeriesRequest(
                device="d", metric="temp", start=start, end=end, bucket=bucket
            )
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (err.value.details() or "")
    assert tsdb.child.alive()


def rewind(w: Writer) -> None:
    """Commit offset 0 on every partition for the writer's (stopped) group: the next writer
    is handed every batch again, as after a crash between its write and its commit."""
    c = Consumer({"bootstrap.servers": w.brokers, "group.id": w.group, "enable.auto.commit": False})
    try:
        meta = c.list_topics(w.topic, timeout=10)
        parts = [TopicPartition(w.topic, p, 0) for p in meta.topics[w.topic].partitions]
        c.commit(offsets=parts, asynchronous=False)
        assert [tp.offset for tp in c.committed(parts, timeout=10)] == [0] * len(parts)
    finally:
        c.close()


def test_a_redelivered_batch_changes_no_point_and_no_rollup(tsdb: Writer) -> None:
    """The same messages handed to a restarted writer again: the points' primary key keeps
    each point once, and the minute and hour rollups must not fold them in twice (compared
    with a recomputation from the points, and their counts with the points)."""
    device = unique("dev")
    now = datetime.now(UTC)
    # Spread over minutes and two hours or more: many rollup rows of both steps.
    tsdb.send(*[reading(device, now - timedelta(seconds=97 * i), v=float(i)) for i in range(50)])
    eventually(lambda: tsdb.count(device) == 50, timeout=30)
    assert rollup_mismatches(tsdb.db, device) == {"tsdb.rollup_1m": 0, "tsdb.rollup_1h": 0}
    tsdb.child.stop(deadline=15)
    rewind(tsdb)
    tsdb.child.start()
    # One partition (the device is the key), consumed in order: once the marker is stored,
    # the 50 redelivered messages before it have been written again.
    tsdb.send(reading(device, now, w=1.0))
    eventually(lambda: tsdb.count(device) == 51, timeout=60)
    assert rollup_surplus(tsdb.db, device) == 0
    assert rollup_mismatches(tsdb.db, device) == {"tsdb.rollup_1m": 0, "tsdb.rollup_1h": 0}
