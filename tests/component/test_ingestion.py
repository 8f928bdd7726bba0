"""Ingestion as a real process against real PostgreSQL and the real broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from cornjacket.v1 import ingestion_pb2, ingestion_pb2_grpc
from google.protobuf import struct_pb2, timestamp_pb2

from services.cli.embedded import EmbeddedBroker, EmbeddedPostgres
from services.cli.processes import free_port
from services.core.events import Event, Metadata
from services.infra import migrations
from services.infra.codec import to_value
from services.infra.postgres import open_pool
from services.ingestion.group_commit import GroupCommitOutbox
from services.ingestion.outbox_store import PostgresOutbox
from services.ingestion.ports import PendingEvent
from tests.support import consume_events, eventually, fetch_one, service_process, unique

pytestmark = pytest.mark.component


def payload(**kw: object) -> struct_pb2.Value:
    return to_value(kw)


def reading(agg: str, value: float = 1.0, **kw: Any) -> ingestion_pb2.IngestEventRequest:
    return ingestion_pb2.IngestEventRequest(
        event_type="sensor.reading", aggregate_id=agg, payload=payload(value=value, unit="C"), **kw
    )


def env_for(db: str, brokers: str, port: int) -> dict[str, str]:
    return {
        "CJ_INGESTION_DATABASE_URL": db,
        "CJ_REDPANDA_BROKERS": brokers,
        "CJ_INGESTION_PORT": str(port),
        "CJ_OUTBOX_POLL_INTERVAL": "1s",
    }


@pytest.fixture(scope="module")
def ingestion(
    database: str, broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ingestion_pb2_grpc.IngestionServiceStub]:
    port = free_port()
    logs = tmp_path_factory.mktemp("ingestion-logs")
    with service_process(
        "ingestion", env_for(database, broker.bootstrap, port), logs, f"127.0.0.1:{port}"
    ):
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        yield ingestion_pb2_grpc.IngestionServiceStub(channel)
        channel.close()


def stored(database: str, agg: str) -> int:
    row = fetch_one(
        database, "SELECT count(*) FROM ingestion.event_store WHERE aggregate_id = %s", (agg,)
    )
    return int(row[0]) if row else 0


def test_accepted_event_reaches_event_store_and_bus(
    ingestion: ingestion_pb2_grpc.IngestionServiceStub, database: str, broker: EmbeddedBroker
) -> None:
    agg = unique("dev")
    t = timestamp_pb2.Timestamp(seconds=1_767_225_600)
    resp = ingestion.IngestEvent(reading(agg, 42.0, event_time=t, trace_id="trace-1"))
    assert resp.status == "accepted"
    assert resp.event_id[14] == "7"  # UUIDv7
    row = eventually(
        lambda: fetch_one(
            database,
            "SELECT event_type, aggregate_id, payload, metadata, event_time "
            "FROM ingestion.event_store WHERE event_id = %s",
            (resp.event_id,),
        ),
        what="event store row",
    )
    assert row[:4] == (
        "sensor.reading",
        agg,
        {"value": 42.0, "unit": "C"},
        {"trace_id": "trace-1", "source": "grpc", "schema_version": 1},
    )
    assert int(row[4].timestamp()) == 1_767_225_600
    eventually(
        lambda: fetch_one(
            database,
            "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM ingestion.outbox WHERE outbox_id = %s)",
            (resp.event_id,),
        ),
        what="outbox row deleted",
    )
    (published,) = consume_events(
        broker.bootstrap, "sensor-events", lambda e: e.aggregate_id == agg, count=1
    )
    assert published.event_id == resp.event_id and published.payload["value"] == 42.0


def test_topics_follow_event_type_prefix(
    ingestion: ingestion_pb2_grpc.IngestionServiceStub, broker: EmbeddedBroker
) -> None:
    agg = unique("u")
    ingestion.IngestEvent(
        ingestion_pb2.IngestEventRequest(
            event_type="user.login", aggregate_id=agg, payload=payload(user_id="u", ip="1.2.3.4")
        )
    )
    ingestion.IngestEvent(
        ingestion_pb2.IngestEventRequest(
            event_type="order.placed", aggregate_id=agg, payload=payload(total=3)
        )
    )
    assert consume_events(broker.bootstrap, "user-actions", lambda e: e.aggregate_id == agg, 1)
    assert consume_events(broker.bootstrap, "system-events", lambda e: e.aggregate_id == agg, 1)


def test_invalid_input_is_rejected_and_writes_nothing(
    ingestion: ingestion_pb2_grpc.IngestionServiceStub, database: str
) -> None:
    agg = unique("bad")
    with pytest.raises(grpc.RpcError) as err:
        ingestion.IngestEvent(
            ingestion_pb2.IngestEventRequest(event_type="", aggregate_id=agg, payload=payload())
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == "event_type is required"
    with pytest.raises(grpc.RpcError) as err:
        ingestion.IngestEvent(ingestion_pb2.IngestEventRequest(event_type="a.b", aggregate_id=agg))
    assert err.value.details() == "payload is required and must be a JSON object"
    with pytest.raises(grpc.RpcError) as err:
        ingestion.IngestEvent(
            ingestion_pb2.IngestEventRequest(
                event_type="a.b", aggregate_id=agg, payload=to_value([1])
            )
        )
    assert err.value.details() == "payload must be a JSON object, not an array"
    assert fetch_one(
        database,
        "SELECT count(*) FROM ingestion.event_store WHERE aggregate_id = %s",
        (agg,),
    ) == (0,)


def test_values_json_cannot_hold_are_invalid_argument(
    ingestion: ingestion_pb2_grpc.IngestionServiceStub, database: str
) -> None:
    """gRPC can carry what JSON cannot: NaN/Infinity numbers, timestamps past year 9999."""
    agg = unique("nonjson")
    nan = ingestion_pb2.IngestEventRequest(event_type="a.b", aggregate_id=agg, payload=payload())
    nan.payload.struct_value.fields["x"].list_value.values.add().number_value = float("nan")
    with pytest.raises(grpc.RpcError) as err:
        ingestion.IngestEvent(nan)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == "payload numbers must be finite (no NaN or Infinity)"
    # In a batch it is that event's rejection; the others are accepted.
    resp = ingestion.IngestEvents(ingestion_pb2.IngestEventsRequest(events=[reading(agg), nan]))
    assert (resp.accepted, resp.rejected) == (1, 1)
    assert "finite" in resp.results[1].error
    late = reading(agg, event_time=timestamp_pb2.Timestamp(seconds=10**12))
    with pytest.raises(grpc.RpcError) as err:
        ingestion.IngestEvent(late)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "event_time is outside" in (err.value.details() or "")
    with pytest.raises(grpc.RpcError) as err:
        ingestion.IngestEvents(ingestion_pb2.IngestEventsRequest(events=[reading(agg), late]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith("events[1]: event_time is outside")
    eventually(lambda: stored(database, agg) == 1, what="only the valid event stored")


def test_idempotency_key_field_and_header(
    ingestion: ingestion_pb2_grpc.IngestionServiceStub, database: str
) -> None:
    agg = unique("idem")
    key = unique("key")
    first = ingestion.IngestEvent(reading(agg, idempotency_key=key))
    again = ingestion.IngestEvent(reading(agg, idempotency_key=key))
    assert (again.event_id, again.status) == (first.event_id, "duplicate")
    hkey = unique("hkey")
    a = ingestion.IngestEvent(reading(agg), metadata=[("idempotency-key", hkey)])
    b = ingestion.IngestEvent(reading(agg), metadata=[("idempotency-key", hkey)])
    assert a.event_id == b.event_id and b.status == "duplicate"
    eventually(lambda: stored(database, agg) == 2, what="two events in the store")


def test_keyed_batch_claims_every_key_once(
    ingestion: ingestion_pb2_grpc.IngestionServiceStub, database: str
) -> None:
    """Keys are claimed set-wise: a key repeated inside a batch, a key from an earlier
    batch and keyless events all get the right answer in one call."""
    agg = unique("keyed")
    k = [unique("k") for _ in range(3)]
    first = ingestion.IngestEvents(
        ingestion_pb2.IngestEventsRequest(events=[reading(agg, idempotency_key=k[0])])
    )
    earlier_id = first.results[0].event_id
    resp = ingestion.IngestEvents(
        ingestion_pb2.IngestEventsRequest(
            events=[
                reading(agg, 1.0, idempotency_key=k[1]),
                reading(agg, 2.0, idempotency_key=k[0]),  # held since the first call
                reading(agg, 3.0),
                reading(agg, 4.0, idempotency_key=k[1]),  # repeated inside this batch
                reading(agg, 5.0, idempotency_key=k[2]),
            ]
        )
    )
    got = [(r.status, r.event_id) for r in resp.results]
    assert [g[0] for g in got] == ["accepted", "duplicate", "accepted", "duplicate", "accepted"]
    assert got[1][1] == earlier_id
    assert got[3][1] == got[0][1]
    assert len({got[0][1], got[2][1], got[4][1], earlier_id}) == 4
    eventually(lambda: stored(database, agg) == 4, what="four distinct events in the store")


def test_batch_answers_per_event(
    ingestion: ingestion_pb2_grpc.IngestionServiceStub, database: str
) -> None:
    agg = unique("batch")
    events = [reading(agg, float(i)) for i in range(300)]
    events.insert(
        7, ingestion_pb2.IngestEventRequest(event_type="bad", aggregate_id=agg, payload=payload())
    )
    resp = ingestion.IngestEvents(ingestion_pb2.IngestEventsRequest(events=events))
    assert (resp.accepted, resp.rejected) == (300, 1)
    assert resp.results[7].status == "rejected" and "dot notation" in resp.results[7].error
    assert all(r.index == i for i, r in enumerate(resp.results))
    eventually(lambda: stored(database, agg) == 300, what="300 events in the store")
    with pytest.raises(grpc.RpcError) as err:
        ingestion.IngestEvents(ingestion_pb2.IngestEventsRequest(events=[reading(agg)] * 501))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_database_outage_answers_unavailable_then_recovers(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg", free_port(), tmp_path / "pg.log")
    pg.start()
    port = free_port()
    try:
        env = env_for(pg.url, broker.bootstrap, port) | {"CJ_INGESTION_DB_TIMEOUT": "1s"}
        with service_process("ingestion", env, tmp_path, f"127.0.0.1:{port}"):
            stub = ingestion_pb2_grpc.IngestionServiceStub(
                grpc.insecure_channel(f"127.0.0.1:{port}")
            )
            agg = unique("outage")
            ok = stub.IngestEvent(reading(agg))
            pg.stop()
            with pytest.raises(grpc.RpcError) as err:
                stub.IngestEvent(reading(agg), timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            pg.start()

            def accepted() -> str | None:
                try:
                    return str(stub.IngestEvent(reading(agg), timeout=5).event_id)
                except grpc.RpcError:
                    return None

            later = eventually(accepted, timeout=30, interval=0.5, what="ingest after recovery")
            eventually(
                lambda: (
                    fetch_one(
                        pg.url,
                        "SELECT count(*) FROM ingestion.event_store WHERE event_id = ANY(%s::uuid[])",
                        ([ok.event_id, later],),
                    )
                    == (2,)
                ),
                what="both events relayed",
            )
    finally:
        pg.stop()


def test_port_in_use_exits_with_clear_error(
    database: str, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with service_process(
            "ingestion", env_for(database, broker.bootstrap, port), tmp_path
        ) as child:
            eventually(lambda: not child.alive(), timeout=30, what="ingestion to exit")
            assert child.exit_code() == 1
            assert f"cannot listen on 127.0.0.1:{port}" in child.tail()


def test_no_rows_left_behind(
    database: str, ingestion: ingestion_pb2_grpc.IngestionServiceStub
) -> None:
    eventually(
        lambda: fetch_one(database, "SELECT count(*) FROM ingestion.outbox") == (0,),
        what="empty outbox",
    )
    with psycopg.connect(database) as conn:
        dupes = conn.execute(
            "SELECT count(*) - count(DISTINCT event_id) FROM ingestion.event_store"
        ).fetchone()
    assert dupes == (0,)


def fresh_database(postgres: EmbeddedPostgres) -> str:
    """A database of its own with ingestion's schema and no relay reading its outbox."""
    name = unique("t").replace("-", "_")
    with psycopg.connect(postgres.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = postgres.url_for(name)
    migrations.apply(url, "ingestion")
    return url


async def test_group_commit_past_the_jsonb_size_limit_stores_every_caller(
    postgres: EmbeddedPostgres,
) -> None:
    """66 concurrent ingests of 4 MiB each share one group commit whose JSON array is past
    PostgreSQL's 256 MiB jsonb limit (ProgramLimitExceeded). That is the group's data, not
    an outage: each caller is committed on its own and every one is stored."""
    url = fresh_database(postgres)
    big = "x" * (4 * 1024 * 1024 - 16)  # one string shared by every payload
    now = datetime.now(UTC)

    def item(n: int) -> PendingEvent:
        return PendingEvent(
            Event(str(uuid.uuid4()), "a.b", f"big-{n}", now, now, {"s": big}, Metadata())
        )

    items = [item(n) for n in range(66)]
    async with open_pool(url, max_size=2, acquire_timeout=30, name="t") as pool:
        outbox = GroupCommitOutbox(PostgresOutbox(pool), max_rows=1000, flushers=1)
        # Started together, every request is queued before the flusher runs: one group.
        results = await asyncio.gather(
            *(outbox.append([it], retention_since=now) for it in items), return_exceptions=True
        )
        await outbox.close()
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert fetch_one(url, "SELECT count(*) FROM ingestion.outbox") == (66,)
