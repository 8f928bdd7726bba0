"""The relay's publish phase (issue 16 review), with the real PostgreSQL, producer and broker.

A partial failure holds back only the aggregate that failed, from its failed row on; a
publish that never answers is bounded well under the database's bound on the batch
transaction and rolls the batch back, freeing its slots with nothing deleted.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from services.cli.embedded import EmbeddedBroker, EmbeddedPostgres
from services.core.errors import InvalidInput, Unavailable
from services.core.events import Event, PartlyPublished, Publication
from services.infra.kafka import (
    RELAY_PUBLISH_TIMEOUT,
    RELAY_SESSION_TIMEOUT,
    KafkaPublisher,
    ensure_topics,
)
from services.infra.postgres import open_pool
from services.ingestion.outbox_store import PostgresOutbox
from services.ingestion.ports import PendingEvent
from services.ingestion.relay import Relay
from services.ingestion.relay_store import SLOT_LOCK_KEY, PostgresRelayStore
from tests.component.test_relay_order import TOPIC, event, fresh_database
from tests.support import consume_events, fetch_one, unique

pytestmark = pytest.mark.component


class PartitionDown:
    """The real producer, but one aggregate's partition leader is down: its messages are not
    acknowledged while the rest of the call is, as librdkafka reports it."""

    def __init__(self, inner: KafkaPublisher, aggregate: str, *, first_only: bool = False) -> None:
        self.inner, self.aggregate = inner, aggregate
        # first_only: only the aggregate's first message in a call fails; its later ones
        # are acknowledged (a retry that got through after a timeout, say).
        self.first_only = first_only
        self.handed: Counter[str] = Counter()

    async def publish(self, events: Sequence[Event]) -> Sequence[Publication | InvalidInput]:
        self.handed.update(e.event_id for e in events)
        failing = [e for e in events if e.aggregate_id == self.aggregate][
            : 1 if self.first_only else None
        ]
        ok = [e for e in events if e not in failing]
        published = iter(await self.inner.publish(ok))
        results: list[Publication | InvalidInput | Unavailable] = [
            Unavailable("broker did not acknowledge: Local: Message timed out")
            if e in failing
            else next(published)
            for e in events
        ]
        if len(ok) < len(events):
            raise PartlyPublished("not acknowledged: Local: Message timed out", results)
        return results  # type: ignore[return-value]


class NeverAnswers:
    async def publish(self, events: Sequence[Event]) -> Sequence[Publication | InvalidInput]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def relay(store: PostgresRelayStore, publisher: object, publish_timeout: float) -> Relay:
    return Relay(
        store,
        publisher,  # type: ignore[arg-type]
        batch_size=50,
        max_retries=2,
        worker_count=1,
        poll_interval=0.1,
        publish_timeout=publish_timeout,
    )


async def test_a_partition_down_holds_back_only_its_aggregate_and_nothing_is_sent_twice(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker
) -> None:
    url = fresh_database(postgres)
    ensure_topics(broker.bootstrap, [TOPIC], 3)
    prefix = unique("partial")
    bad = f"{prefix}-bad"
    events = [event(bad, 0)] + [event(f"{prefix}-ok", n) for n in range(5)] + [event(bad, 1)]
    producer = KafkaPublisher(broker.bootstrap)
    publisher = PartitionDown(producer, bad)
    try:
        async with open_pool(url, max_size=2, acquire_timeout=10, name="t") as pool:
            await PostgresOutbox(pool).append(
                [PendingEvent(e) for e in events], retention_since=datetime.now(UTC)
            )
            r = relay(PostgresRelayStore(pool), publisher, RELAY_PUBLISH_TIMEOUT)
            for _ in range(5):  # past max_retries: a transient failure is never set aside
                with pytest.raises(Unavailable):
                    await r.step()
            kept = await asyncio.to_thread(
                fetch_one,
                url,
                "SELECT array_agg(event_payload->>'event_id' ORDER BY seq), "
                "min(retry_count), max(retry_count) FROM ingestion.outbox",
            )
            assert kept == ([events[0].event_id, events[-1].event_id], 5, 5)
            assert await asyncio.to_thread(
                fetch_one, url, "SELECT count(*) FROM ingestion.outbox_poison"
            ) == (0,)
            # The healthy aggregate was handed to the producer once, recorded once.
            assert all(publisher.handed[e.event_id] == 1 for e in events[1:-1])
            assert await asyncio.to_thread(
                fetch_one, url, "SELECT count(*) FROM ingestion.event_publications"
            ) == (5,)
            # The partition is back: the held aggregate goes out in order.
            publisher.aggregate = ""
            assert await r.step() == 2
    finally:
        producer.close()
    found = await asyncio.to_thread(
        consume_events,
        broker.bootstrap,
        TOPIC,
        lambda e: e.aggregate_id.startswith(prefix + "-"),
        count=len(events) + 1,
        timeout=8,
    )
    assert Counter(e.event_id for e in found) == Counter(e.event_id for e in events)
    assert [e.event_id for e in found if e.aggregate_id == bad] == [
        events[0].event_id,
        events[-1].event_id,
    ]


async def test_a_publish_that_never_answers_rolls_back_and_frees_its_slots(
    postgres: EmbeddedPostgres,
) -> None:
    """Only the server's idle_in_transaction_session_timeout bounded a batch: past it the
    slots were freed while the relay's messages were in flight. The relay's own bound is
    derived from the same message timeout and well under it."""
    assert RELAY_PUBLISH_TIMEOUT + 5 <= RELAY_SESSION_TIMEOUT
    url = fresh_database(postgres)
    events = [event(unique("silent"), n) for n in range(3)]
    async with open_pool(url, max_size=2, acquire_timeout=10, name="t") as pool:
        await PostgresOutbox(pool).append(
            [PendingEvent(e) for e in events], retention_since=datetime.now(UTC)
        )
        store = PostgresRelayStore(pool)
        with pytest.raises(Unavailable, match="rolled back"):
            await relay(store, NeverAnswers(), publish_timeout=0.5).step()
        # Rolled back: every row kept as it was, nothing deleted or recorded, no slot held.
        assert await asyncio.to_thread(
            fetch_one, url, "SELECT count(*), max(retry_count) FROM ingestion.outbox"
        ) == (3, 0)
        assert await asyncio.to_thread(
            fetch_one, url, "SELECT count(*) FROM ingestion.event_publications"
        ) == (0,)
        assert await asyncio.to_thread(
            fetch_one,
            url,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s",
            (SLOT_LOCK_KEY,),
        ) == (0,)
        async with store.claim(10) as batch:  # another relay gets them at once
            assert [r.event.event_id for r in batch.rows if r.event] == [e.event_id for e in events]


async def test_a_later_event_acknowledged_after_its_aggregates_failed_one_is_held_back_too(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker
) -> None:
    """Review finding: the partial failure above failed every message of the aggregate. When
    its first fails and a later one is acknowledged anyway, the later row must stay in the
    outbox unrecorded (it goes out again after the first): its last copy on the bus follows
    the first event's, so a consumer that keeps the latest ends with the right order."""
    url = fresh_database(postgres)
    ensure_topics(broker.bootstrap, [TOPIC], 3)
    prefix = unique("partial-later")
    bad = f"{prefix}-bad"
    events = [event(bad, 0), event(f"{prefix}-ok", 0), event(bad, 1), event(bad, 2)]
    producer = KafkaPublisher(broker.bootstrap)
    publisher = PartitionDown(producer, bad, first_only=True)
    try:
        async with open_pool(url, max_size=2, acquire_timeout=10, name="t") as pool:
            await PostgresOutbox(pool).append(
                [PendingEvent(e) for e in events], retention_since=datetime.now(UTC)
            )
            r = relay(PostgresRelayStore(pool), publisher, RELAY_PUBLISH_TIMEOUT)
            with pytest.raises(Unavailable):
                await r.step()
            # Every row of the aggregate stays, the acknowledged ones too; none recorded.
            kept = await asyncio.to_thread(
                fetch_one,
                url,
                "SELECT array_agg(event_payload->>'event_id' ORDER BY seq) FROM ingestion.outbox",
            )
            assert kept == ([events[0].event_id, events[2].event_id, events[3].event_id],)
            recorded = await asyncio.to_thread(
                fetch_one,
                url,
                "SELECT array_agg(event_id::text) FROM ingestion.event_publications",
            )
            assert recorded == ([events[1].event_id],)
            publisher.aggregate = ""
            assert await r.step() == 3
    finally:
        producer.close()
    found = await asyncio.to_thread(
        consume_events,
        broker.bootstrap,
        TOPIC,
        lambda e: e.aggregate_id == bad,
        count=5,  # 1 and 2 were acknowledged once already: both go out twice
        timeout=8,
    )
    ids = [e.event_id for e in found]
    assert Counter(ids) == Counter(
        {events[0].event_id: 1, events[2].event_id: 2, events[3].event_id: 2}
    )
    # The last copies are in accept order.
    last = {eid: i for i, eid in enumerate(ids)}
    assert sorted(last, key=last.__getitem__) == [
        e.event_id for e in (events[0], events[2], events[3])
    ]
