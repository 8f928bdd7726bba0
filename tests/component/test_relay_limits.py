"""The relay and the bus's message size limit, with the real producer, broker and PostgreSQL.

A large event must not wedge its relay batch: when the limits agree it is published like any
other; when it truly cannot be published it is set aside as a poison row of its own and its
batch-mates go out exactly once.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import grpc
import psycopg
import pytest
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
)
from cornjacket.v1 import ingestion_pb2, ingestion_pb2_grpc

from services.cli.embedded import EmbeddedBroker, EmbeddedPostgres
from services.cli.processes import free_port
from services.core.errors import InvalidInput
from services.core.events import Event, Metadata, Publication
from services.infra import migrations
from services.infra.codec import to_value
from services.infra.kafka import RELAY_PUBLISH_TIMEOUT, KafkaPublisher, ensure_topics, message_limit
from services.infra.postgres import open_pool
from services.ingestion.outbox_store import PostgresOutbox
from services.ingestion.ports import PendingEvent
from services.ingestion.relay import Relay
from services.ingestion.relay_store import PostgresRelayStore
from tests.support import consume_events, eventually, fetch_one, service_process, unique

pytestmark = pytest.mark.component

MIB = 1024 * 1024


def fresh_database(postgres: EmbeddedPostgres) -> str:
    """A database of its own with ingestion's schema and no relay reading its outbox."""
    name = unique("t").replace("-", "_")
    with psycopg.connect(postgres.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = postgres.url_for(name)
    migrations.apply(url, "ingestion")
    return url


def publications(url: str, ids: Sequence[str]) -> Counter[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT event_id::text FROM ingestion.event_publications "
            "WHERE event_id = ANY(%s::uuid[])",
            (list(ids),),
        ).fetchall()
    return Counter(r[0] for r in rows)


def test_a_2_mib_event_between_small_ones_is_published_and_nothing_is_sent_twice(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """CJ_INGESTION_MAX_PAYLOAD_BYTES allows 4 MiB; the relay's producer used to keep
    librdkafka's ~1 MB limit, so this batch failed forever and its small events were
    published again on every retry."""
    url = fresh_database(postgres)
    port = free_port()
    env = {
        "CJ_INGESTION_DATABASE_URL": url,
        "CJ_REDPANDA_BROKERS": broker.bootstrap,
        "CJ_INGESTION_PORT": str(port),
        "CJ_INGESTION_MAX_PAYLOAD_BYTES": str(4 * MIB),
        "CJ_OUTBOX_POLL_INTERVAL": "1s",
        "CJ_OUTBOX_WORKER_COUNT": "1",
    }
    agg = unique("big")
    with service_process("ingestion", env, tmp_path, f"127.0.0.1:{port}"):
        stub = ingestion_pb2_grpc.IngestionServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))

        def event(n: int, payload: dict[str, object]) -> ingestion_pb2.IngestEventRequest:
            return ingestion_pb2.IngestEventRequest(
                event_type="system.blob", aggregate_id=f"{agg}-{n}", payload=to_value(payload)
            )

        resp = stub.IngestEvents(
            ingestion_pb2.IngestEventsRequest(
                events=[
                    event(0, {"n": 0}),
                    event(1, {"n": 1}),
                    event(2, {"blob": "x" * (2 * MIB)}),
                    event(3, {"n": 3}),
                    event(4, {"n": 4}),
                ]
            )
        )
        assert resp.accepted == 5
        ids = [r.event_id for r in resp.results]
        eventually(
            lambda: fetch_one(url, "SELECT count(*) FROM ingestion.outbox") == (0,),
            timeout=60,
            what="outbox drained (the big event's batch used to fail forever)",
        )
    # Each event's copy was acknowledged and recorded exactly once.
    assert publications(url, ids) == Counter({i: 1 for i in ids})
    assert fetch_one(url, "SELECT count(*) FROM ingestion.outbox_poison") == (0,)
    found = consume_events(
        broker.bootstrap, "system-events", lambda e: e.aggregate_id.startswith(agg), count=5
    )
    assert sorted(e.event_id for e in found) == sorted(ids)
    (blob,) = [e for e in found if "blob" in e.payload]
    assert len(blob.payload["blob"]) == 2 * MIB


class Recording:
    """Publisher decorator: how often each event was handed to the real producer."""

    def __init__(self, inner: KafkaPublisher) -> None:
        self.inner = inner
        self.handed: Counter[str] = Counter()

    async def publish(self, events: Sequence[Event]) -> Sequence[Publication | InvalidInput]:
        self.handed.update(e.event_id for e in events)
        return await self.inner.publish(events)


async def test_a_row_that_cannot_be_published_becomes_a_poison_row_and_its_batch_mates_go_once(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker
) -> None:
    url = fresh_database(postgres)
    now = datetime.now(UTC)
    agg = unique("poison")

    def pending(n: int, payload: dict[str, object]) -> PendingEvent:
        return PendingEvent(
            Event(str(uuid.uuid4()), "system.blob", f"{agg}-{n}", now, now, payload, Metadata())
        )

    items = [
        pending(0, {"n": 0}),
        pending(1, {"blob": "x" * 20_000}),  # over the tiny producer limit below
        pending(2, {"n": 2}),
    ]
    small = [items[0].event.event_id, items[2].event.event_id]
    big = items[1].event.event_id
    # A producer limit far below the payload limit: this row can never be published.
    producer = KafkaPublisher(broker.bootstrap, max_message_bytes=10_000)
    publisher = Recording(producer)
    try:
        async with open_pool(url, max_size=2, acquire_timeout=10, name="t") as pool:
            await PostgresOutbox(pool).append(items, retention_since=now)
            relay = Relay(
                PostgresRelayStore(pool),
                publisher,
                batch_size=10,
                max_retries=5,
                worker_count=1,
                poll_interval=1,
                publish_timeout=RELAY_PUBLISH_TIMEOUT,
            )
            assert await relay.step() == 3  # two published, one set aside
            assert await relay.step() == 0  # nothing held back, nothing sent again
    finally:
        producer.close()
    assert relay.poisoned == 1
    # The producer refuses it alone: set aside at once, never sent again after its
    # batch-mates (ADR 18); its batch-mates go once.
    assert publisher.handed == Counter({small[0]: 1, small[1]: 1, big: 1})
    assert fetch_one(url, "SELECT count(*) FROM ingestion.outbox") == (0,)
    row = fetch_one(
        url,
        "SELECT outbox_id::text, event_payload->>'aggregate_id', retry_count, last_error "
        "FROM ingestion.outbox_poison",
    )
    assert row is not None and row[:3] == (big, f"{agg}-1", 1)
    assert "too large" in row[3].lower()
    # The event was accepted: it stays in the history, it is just not on the bus.
    assert fetch_one(
        url, "SELECT count(*) FROM ingestion.event_store WHERE aggregate_id LIKE %s", (agg + "%",)
    ) == (3,)
    assert publications(url, [*small, big]) == Counter({small[0]: 1, small[1]: 1})
    found = consume_events(
        broker.bootstrap, "system-events", lambda e: e.aggregate_id.startswith(agg), count=2
    )
    assert sorted(e.event_id for e in found) == sorted(small)


def test_ingestion_raises_the_limit_of_topics_created_before_it(tmp_path: Path) -> None:
    """The event handler and the orchestrator create the same topics without a limit (a
    broker's default: 1 MiB on Redpanda). Ingestion must raise it, or events past it
    would become poison rows; new topics are created with it."""
    own = EmbeddedBroker(free_port(), tmp_path / "broker.log")
    own.start()
    try:
        admin = AdminClient({"bootstrap.servers": own.bootstrap})
        existing = NewTopic("sensor-events", 1, 1, config={"max.message.bytes": "1048576"})
        # Tansu answers DescribeConfigs (no "unsupported" error) with only the configs a
        # topic was created with: one created without a limit reports none, is not checked,
        # and does not stop ingestion (any error used to be taken for "no DescribeConfigs").
        unlimited = NewTopic("system-events", 1, 1)
        for fut in admin.create_topics([existing, unlimited]).values():
            fut.result(10)
        needed = message_limit(4 * MIB)
        topics = ["sensor-events", "user-actions", "system-events"]
        ensure_topics(own.bootstrap, topics, 1, 1, max_message_bytes=needed)
        limits = {}
        resources = [ConfigResource("topic", t) for t in topics]
        for res, fut in admin.describe_configs(resources).items():
            entry = fut.result(10).get("max.message.bytes")
            limits[res.name] = None if entry is None else int(entry.value)
        assert limits == {"sensor-events": needed, "user-actions": needed, "system-events": None}
    finally:
        own.stop()
