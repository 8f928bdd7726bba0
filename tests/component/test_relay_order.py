"""Per-aggregate order on the bus (ADR 18), with the real PostgreSQL, producer and broker.

Two relays (separate pools, several workers each) on one outbox: every aggregate's events
are read back from the topic in the order their outbox rows were committed, none lost,
none doubled; a failed batch holds its slots back; a relay whose connection is closed
mid-batch gives its slots up to the other; an unreadable row does not block its slot.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import psycopg
import pytest

from services.cli.embedded import EmbeddedBroker, EmbeddedPostgres
from services.core.errors import InvalidInput, Unavailable
from services.core.events import Event, Metadata, Publication
from services.infra import migrations
from services.infra.kafka import RELAY_PUBLISH_TIMEOUT, KafkaPublisher, ensure_topics
from services.infra.postgres import DictPool, open_pool
from services.ingestion.outbox_store import PostgresOutbox
from services.ingestion.ports import PendingEvent
from services.ingestion.relay import Relay, slot_of
from services.ingestion.relay_store import SLOT_LOCK_KEY, PostgresRelayStore
from tests.support import consume_events, eventually, fetch_one, unique

pytestmark = pytest.mark.component

TOPIC = "sensor-events"
OUTBOX_ROWS = "SELECT count(*) FROM ingestion.outbox"


def fresh_database(postgres: EmbeddedPostgres) -> str:
    name = unique("t").replace("-", "_")
    with psycopg.connect(postgres.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = postgres.url_for(name)
    migrations.apply(url, "ingestion")
    return url


def event(aggregate: str, n: int) -> Event:
    now = datetime.now(UTC)
    payload = {"value": n, "unit": "C"}
    return Event(str(uuid.uuid4()), "sensor.reading", aggregate, now, now, payload, Metadata())


def interleaved(prefix: str, aggregates: int, per_aggregate: int) -> list[Event]:
    """Round robin over the aggregates: every batch mixes many aggregates."""
    return [event(f"{prefix}-{a}", n) for n in range(per_aggregate) for a in range(aggregates)]


def by_aggregate(events: Sequence[Event]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for e in events:
        out[e.aggregate_id].append(e.event_id)
    return dict(out)


class FailingEvery:
    """A producer that fails every ``n``-th call before sending anything (a broker hiccup)."""

    def __init__(self, inner: KafkaPublisher, n: int) -> None:
        self.inner, self.n, self.calls = inner, n, 0

    async def publish(self, events: Sequence[Event]) -> Sequence[Publication | InvalidInput]:
        self.calls += 1
        if self.calls % self.n == 0:
            raise Unavailable("broker did not acknowledge: injected")
        return await self.inner.publish(events)


class SendsThenHangs:
    """Publishes its first batch, then never returns: a relay that died after producing
    and before deleting (the worst moment)."""

    def __init__(self, inner: KafkaPublisher) -> None:
        self.inner = inner
        self.holding = asyncio.Event()
        self.sent: list[Event] = []

    async def publish(self, events: Sequence[Event]) -> Sequence[Publication | InvalidInput]:
        result = await self.inner.publish(events)
        self.sent += events
        self.holding.set()
        await asyncio.Event().wait()
        return result


def relay(pool: DictPool, publisher: object, workers: int, *, max_retries: int = 5) -> Relay:
    return Relay(
        PostgresRelayStore(pool),
        publisher,  # type: ignore[arg-type]
        batch_size=7,
        max_retries=max_retries,
        worker_count=workers,
        poll_interval=0.1,
        publish_timeout=RELAY_PUBLISH_TIMEOUT,
    )


async def drained(url: str, within: float = 60) -> None:
    await asyncio.to_thread(
        eventually,
        lambda: fetch_one(url, OUTBOX_ROWS) == (0,),
        timeout=within,
        what="outbox drained",
    )


async def test_two_relays_keep_every_aggregates_commit_order_through_failed_batches(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker
) -> None:
    url = fresh_database(postgres)
    ensure_topics(broker.bootstrap, [TOPIC], 3)
    prefix = unique("order")
    events = interleaved(prefix, aggregates=30, per_aggregate=20)
    producers = [KafkaPublisher(broker.bootstrap) for _ in range(2)]
    try:
        async with (
            open_pool(url, max_size=4, acquire_timeout=10, name="a") as pool_a,
            open_pool(url, max_size=4, acquire_timeout=10, name="b") as pool_b,
            open_pool(url, max_size=1, acquire_timeout=10, name="ingest") as ingest,
        ):
            relays = [
                relay(pool_a, FailingEvery(producers[0], 3), workers=3),
                relay(pool_b, FailingEvery(producers[1], 4), workers=3),
            ]
            tasks = [asyncio.create_task(r.run()) for r in relays]
            outbox = PostgresOutbox(ingest)
            # One commit after the other while the relays run: commit order is list order.
            for i in range(0, len(events), 15):
                chunk = [PendingEvent(e) for e in events[i : i + 15]]
                await outbox.append(chunk, retention_since=datetime.now(UTC))
            await drained(url)
            for r in relays:
                r.stop()
            await asyncio.gather(*tasks)
    finally:
        for p in producers:
            p.close()
    found = await asyncio.to_thread(
        consume_events,
        broker.bootstrap,
        TOPIC,
        lambda e: e.aggregate_id.startswith(prefix + "-"),
        count=len(events) + 1,
        timeout=8,
    )
    doubled = [k for k, v in Counter(e.event_id for e in found).items() if v > 1]
    assert not doubled
    assert by_aggregate(found) == by_aggregate(events)


async def test_a_relay_whose_connection_closes_mid_batch_gives_its_slots_to_the_other(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker
) -> None:
    url = fresh_database(postgres)
    ensure_topics(broker.bootstrap, [TOPIC], 3)
    prefix = unique("takeover")
    events = interleaved(prefix, aggregates=12, per_aggregate=10)
    producers = [KafkaPublisher(broker.bootstrap) for _ in range(2)]
    dying = SendsThenHangs(producers[0])
    try:
        async with (
            open_pool(url, max_size=2, acquire_timeout=10, name="a") as pool_a,
            open_pool(url, max_size=3, acquire_timeout=10, name="b") as pool_b,
        ):
            await PostgresOutbox(pool_a).append(
                [PendingEvent(e) for e in events], retention_since=datetime.now(UTC)
            )
            first = relay(pool_a, dying, workers=1)
            a = asyncio.create_task(first.step())
            await asyncio.wait_for(dying.holding.wait(), timeout=20)
            holder = await asyncio.to_thread(
                fetch_one,
                url,
                "SELECT array_agg(DISTINCT pid) FROM pg_locks "
                "WHERE locktype = 'advisory' AND classid = %s AND granted",
                (SLOT_LOCK_KEY,),
            )
            assert holder is not None and holder[0] and len(holder[0]) == 1
            second = relay(pool_b, producers[1], workers=2)
            b = asyncio.create_task(second.run())
            # The dead relay's connection closes (its process is gone); its slots come free.
            await asyncio.to_thread(
                fetch_one, url, "SELECT pg_terminate_backend(%s)", (holder[0][0],)
            )
            await drained(url, within=30)
            second.stop()
            await b
            a.cancel()
    finally:
        for p in producers:
            p.close()
    found = await asyncio.to_thread(
        consume_events,
        broker.bootstrap,
        TOPIC,
        lambda e: e.aggregate_id.startswith(prefix + "-"),
        count=len(events) + len(dying.sent) + 1,
        timeout=8,
    )
    assert dying.sent  # the dead relay did publish a batch without deleting it
    expected = by_aggregate(events)
    got = by_aggregate(found)
    assert set(got) == set(expected)
    for aggregate, ids in expected.items():
        # What the dead relay sent (a prefix of the aggregate's rows), then every row once
        # more in order: republished, never reordered.
        seen = got[aggregate]
        repeated = len(seen) - len(ids)
        assert repeated >= 0 and seen[repeated:] == ids and seen[:repeated] == ids[:repeated], (
            aggregate
        )


async def test_an_unreadable_row_does_not_block_its_slot_and_is_set_aside(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker
) -> None:
    url = fresh_database(postgres)
    ensure_topics(broker.bootstrap, [TOPIC], 3)
    aggregate = unique("poison")
    producer = KafkaPublisher(broker.bootstrap)
    good = [event(aggregate, n) for n in range(3)]
    try:
        async with open_pool(url, max_size=2, acquire_timeout=10, name="t") as pool:
            async with pool.connection() as conn:
                await conn.execute(
                    "INSERT INTO ingestion.outbox (outbox_id, event_payload) "
                    "VALUES (gen_random_uuid(), %s::jsonb)",
                    (json.dumps({"aggregate_id": aggregate, "event_type": 7}),),
                )
            await PostgresOutbox(pool).append(
                [PendingEvent(e) for e in good], retention_since=datetime.now(UTC)
            )
            async with pool.connection() as conn:
                cur = await conn.execute("SELECT DISTINCT slot FROM ingestion.outbox")
                slots = [row["slot"] for row in await cur.fetchall()]
            assert slots == [slot_of(aggregate)]  # the schema's slot is relay.slot_of's
            r = relay(pool, producer, workers=1, max_retries=2)
            assert await r.step() == 3  # the good rows are not held back
            assert await r.step() == 1  # the unreadable one is set aside on its 2nd failure
            assert await r.step() == 0
    finally:
        producer.close()
    assert r.poisoned == 1
    assert fetch_one(url, "SELECT count(*) FROM ingestion.outbox_poison") == (1,)
    found = await asyncio.to_thread(
        consume_events, broker.bootstrap, TOPIC, lambda e: e.aggregate_id == aggregate, 3
    )
    assert [e.event_id for e in found] == [e.event_id for e in good]


async def test_concurrent_claims_split_the_slots_and_own_only_those_they_use(
    postgres: EmbeddedPostgres,
) -> None:
    # Measured: a claim that locked every slot of the outbox's head (and used a quarter)
    # left the other workers nothing, so one worker relayed at a time (ADR 18, "Cost").
    url = fresh_database(postgres)
    events = interleaved(unique("split"), aggregates=400, per_aggregate=2)
    async with open_pool(url, max_size=4, acquire_timeout=10, name="t") as pool:
        await PostgresOutbox(pool).append(
            [PendingEvent(e) for e in events], retention_since=datetime.now(UTC)
        )
        store = PostgresRelayStore(pool)
        slots_of = {e.event_id: slot_of(e.aggregate_id) for e in events}
        owned: list[set[int]] = []
        async with store.claim(50) as a, store.claim(50) as b, store.claim(50) as c:
            for batch in (a, b, c):
                assert len(batch.rows) == 50
                owned.append({slots_of[r.event.event_id] for r in batch.rows if r.event})
            locks = await asyncio.to_thread(
                fetch_one,
                url,
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s",
                (SLOT_LOCK_KEY,),
            )
    assert not owned[0] & owned[1] and not owned[0] & owned[2] and not owned[1] & owned[2]
    assert locks == (sum(len(s) for s in owned),)  # no slot locked that is not used


async def advisory_locks(url: str) -> int:
    row = await asyncio.to_thread(
        fetch_one,
        url,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s",
        (SLOT_LOCK_KEY,),
    )
    assert row is not None
    return int(row[0])


async def test_a_second_replica_gets_rows_while_every_worker_of_the_first_holds_a_batch(
    postgres: EmbeddedPostgres,
) -> None:
    # A claim used to lock ceil(64 / worker_count) slots whatever its batch needed: the four
    # claims of one relay with 4 workers held all 64 slots and a second replica got nothing
    # (README "Known limits", issue 16). A claim now takes the slots its batch needs.
    url = fresh_database(postgres)
    events = interleaved(unique("replica"), aggregates=400, per_aggregate=10)
    async with open_pool(url, max_size=6, acquire_timeout=10, name="t") as pool:
        await PostgresOutbox(pool).append(
            [PendingEvent(e) for e in events], retention_since=datetime.now(UTC)
        )
        store = PostgresRelayStore(pool)
        async with AsyncExitStack() as first_relay:
            held = [await first_relay.enter_async_context(store.claim(50)) for _ in range(4)]
            assert all(len(batch.rows) == 50 for batch in held)
            async with store.claim(50) as second_replica:
                assert len(second_replica.rows) == 50
            # About 63 rows wait per slot: a batch of 50 needs one or two slots, not 16.
            assert await advisory_locks(url) <= 4 * 2


async def test_a_claim_over_few_hot_aggregates_takes_few_slots(
    postgres: EmbeddedPostgres,
) -> None:
    url = fresh_database(postgres)
    hot = [unique("hot") for _ in range(2)]
    cold = [unique("cold") for _ in range(60)]
    # The hot aggregates' rows come first; the cold ones wait behind them.
    events = [event(a, n) for n in range(100) for a in hot] + [event(a, 0) for a in cold]
    async with open_pool(url, max_size=2, acquire_timeout=10, name="t") as pool:
        await PostgresOutbox(pool).append(
            [PendingEvent(e) for e in events], retention_since=datetime.now(UTC)
        )
        store = PostgresRelayStore(pool)
        async with store.claim(50) as batch:
            assert len(batch.rows) == 50
            taken = {r.event.aggregate_id for r in batch.rows if r.event}
            locks = await advisory_locks(url)
    assert taken <= set(hot)
    assert locks == 1  # the oldest row's slot alone fills the batch


async def _waiting_on_a_row_lock(url: str) -> bool:
    row = await asyncio.to_thread(
        fetch_one,
        url,
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
        ("%outbox_claim%",),
    )
    return row == (1,)


async def test_a_claim_counts_what_it_returns_when_a_slot_changes_under_it(
    postgres: EmbeddedPostgres,
) -> None:
    """The claim's function counted a slot's rows with a fresh snapshot while the claim read
    them under the statement's older one: rows committed in between were counted, not read,
    and the claim came back short (even empty) holding slots it did not use. Here the claim
    waits on a row of its first slot while the second slot's rows are replaced (old ones
    deleted, new ones committed): it must return the first slot's row and the new ones."""
    url = fresh_database(postgres)
    first = unique("first")
    second = next(a for a in (unique("second") for _ in range(100)) if slot_of(a) != slot_of(first))
    a1 = event(first, 0)
    old = [event(second, n) for n in range(3)]
    new = [event(second, n) for n in range(3, 6)]
    async with open_pool(url, max_size=3, acquire_timeout=10, name="t") as pool:
        outbox = PostgresOutbox(pool)
        for e in (a1, *old):  # a1 is the oldest row: its slot is tried first
            await outbox.append([PendingEvent(e)], retention_since=datetime.now(UTC))
        store = PostgresRelayStore(pool)
        with psycopg.connect(url) as other:
            # Holds a1's row (no slot lock): the claim waits there, mid-statement.
            other.execute(
                "SELECT 1 FROM ingestion.outbox WHERE outbox_id = %s FOR UPDATE", (a1.event_id,)
            )

            async def claim() -> list[str]:
                async with store.claim(4) as batch:
                    return [r.event.event_id for r in batch.rows if r.event]

            claiming = asyncio.create_task(claim())
            await asyncio.to_thread(
                eventually,
                lambda: asyncio.run(_waiting_on_a_row_lock(url)),
                timeout=30,
                what="the claim waiting on a1's row",
            )
            # Meanwhile the second slot's rows are published by someone else and new ones
            # arrive: both committed after the claim statement began.
            await outbox.append([PendingEvent(e) for e in new], retention_since=datetime.now(UTC))
            other.execute(
                "DELETE FROM ingestion.outbox WHERE outbox_id = ANY(%s::uuid[])",
                ([e.event_id for e in old],),
            )
            other.commit()
            taken = await asyncio.wait_for(claiming, 30)
    assert taken == [a1.event_id, *(e.event_id for e in new)]


async def test_a_slot_emptied_between_the_scan_and_its_lock_is_not_held(
    postgres: EmbeddedPostgres,
) -> None:
    """Review item (coverage): the claim's candidate scan sees a slot with rows; by the time
    the loop reaches it, its rows were published and deleted by someone else. The claim
    checks again before locking: it returns only what it can use and holds no lock on the
    emptied slot (a new row there would otherwise wait a whole batch)."""
    url = fresh_database(postgres)
    first = unique("first")
    second = next(a for a in (unique("second") for _ in range(100)) if slot_of(a) != slot_of(first))
    a1 = event(first, 0)
    gone = [event(second, n) for n in range(3)]
    async with open_pool(url, max_size=3, acquire_timeout=10, name="t") as pool:
        outbox = PostgresOutbox(pool)
        for e in (a1, *gone):  # a1 is the oldest row: its slot is tried first
            await outbox.append([PendingEvent(e)], retention_since=datetime.now(UTC))
        store = PostgresRelayStore(pool)
        with psycopg.connect(url) as other:
            other.execute(
                "SELECT 1 FROM ingestion.outbox WHERE outbox_id = %s FOR UPDATE", (a1.event_id,)
            )

            async def claim() -> tuple[list[str], int]:
                async with store.claim(4) as batch:
                    return [r.event.event_id for r in batch.rows if r.event], await advisory_locks(
                        url
                    )

            claiming = asyncio.create_task(claim())
            await asyncio.to_thread(
                eventually,
                lambda: asyncio.run(_waiting_on_a_row_lock(url)),
                timeout=30,
                what="the claim waiting on a1's row",
            )
            # The second slot's rows go out elsewhere while the claim waits on the first.
            other.execute(
                "DELETE FROM ingestion.outbox WHERE outbox_id = ANY(%s::uuid[])",
                ([e.event_id for e in gone],),
            )
            other.commit()
            taken, locks = await asyncio.wait_for(claiming, 30)
    assert taken == [a1.event_id]
    assert locks == 1  # the first slot's; none on the emptied one
