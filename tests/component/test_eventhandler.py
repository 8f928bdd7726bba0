"""The event handler as a real process: real broker in, real PostgreSQL out."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
import uuid_utils
from confluent_kafka import Producer
from cornjacket.v1 import dlq_pb2, dlq_pb2_grpc, events_pb2

from services.cli.embedded import EmbeddedBroker
from services.cli.processes import Child, free_port
from services.core.events import Event
from services.infra.codec import encode_event
from services.infra.kafka import ensure_topics
from tests.support import eventually, fetch_one, service_process, unique

pytestmark = pytest.mark.component

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


class Bus:
    def __init__(self, brokers: str, topics: dict[str, str]) -> None:
        self.brokers = brokers
        self.producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True})
        self.topics = topics

    def send(self, event: Event | None, *, topic: str = "sensor", raw: bytes | None = None) -> None:
        value = raw if raw is not None else encode_event(event)  # type: ignore[arg-type]
        key = event.aggregate_id.encode() if event else b"poison"
        self.producer.produce(self.topics[topic], key=key, value=value)
        self.producer.flush(10)


def reading(agg: str, value: float, seconds: int, event_id: str | None = None) -> Event:
    return Event(
        event_id or str(uuid_utils.uuid7()),
        "sensor.reading",
        agg,
        T0 + timedelta(seconds=seconds),
        T0,
        {"value": value, "unit": "C"},
    )


@pytest.fixture(scope="module")
def handler(
    database: str, broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Bus, Child]]:
    # Own topics and group per module, so other tests' traffic never reaches this handler.
    topics = {k: unique(f"t-{k}") for k in ("sensor", "user", "system")}
    ensure_topics(broker.bootstrap, list(topics.values()), partitions=2)
    port = free_port()
    env = {
        "CJ_EVENTHANDLER_DATABASE_URL": database,
        "CJ_REDPANDA_BROKERS": broker.bootstrap,
        "CJ_EVENTHANDLER_PORT": str(port),
        "CJ_EVENTHANDLER_TOPICS": ",".join(topics.values()),
        "CJ_EVENTHANDLER_CONSUMER_GROUP": unique("group"),
        "CJ_EVENTHANDLER_POLL_TIMEOUT": "100ms",
    }
    logs = tmp_path_factory.mktemp("handler-logs")
    with service_process("eventhandler", env, logs, f"127.0.0.1:{port}") as child:
        child.env_port = port  # type: ignore[attr-defined]
        # Its dead letters' consumer name.
        child.env_group = env["CJ_EVENTHANDLER_CONSUMER_GROUP"]  # type: ignore[attr-defined]
        yield Bus(broker.bootstrap, topics), child


def state(db: str, ptype: str, agg: str) -> tuple[object, ...] | None:
    return fetch_one(
        db,
        "SELECT state, last_event_id::text, last_event_timestamp FROM eventhandler.projections "
        "WHERE projection_type = %s AND aggregate_id = %s",
        (ptype, agg),
    )


def test_reading_folds_into_sensor_state_newer_wins(
    handler: tuple[Bus, Child], database: str
) -> None:
    bus, _ = handler
    agg = unique("dev")
    newer = reading(agg, 2.0, 10)
    bus.send(newer)
    row = eventually(lambda: state(database, "sensor_state", agg), what="projection")
    assert row[0] == {"value": 2.0, "unit": "C"} and row[1] == newer.event_id
    older = reading(agg, 1.0, 5)
    bus.send(older)
    newest = reading(agg, 3.0, 20)
    bus.send(newest)
    eventually(lambda: state(database, "sensor_state", agg)[1] == newest.event_id, what="newest")  # type: ignore[index]
    # Re-delivery of an already applied event changes nothing.
    bus.send(older)
    bus.send(newest)
    marker = reading(unique("marker"), 0.0, 0)
    bus.send(marker)
    eventually(lambda: state(database, "sensor_state", marker.aggregate_id), what="marker")
    assert state(database, "sensor_state", agg)[0] == {"value": 3.0, "unit": "C"}  # type: ignore[index]


def test_user_login_and_unknown_types(handler: tuple[Bus, Child], database: str) -> None:
    bus, _ = handler
    user = unique("user")
    login = Event(
        str(uuid_utils.uuid7()), "user.login", user, T0, T0, {"user_id": user, "ip": "10.1.1.1"}
    )
    bus.send(
        Event(
            str(uuid_utils.uuid7()), "system.alert", user, T0, T0, {"level": "x", "message": "y"}
        ),
        topic="system",
    )
    bus.send(login, topic="user")
    row = eventually(lambda: state(database, "user_session", user), what="user_session")
    assert row[0]["ip"] == "10.1.1.1"  # type: ignore[index]
    assert fetch_one(
        database, "SELECT count(*) FROM eventhandler.projections WHERE aggregate_id = %s", (user,)
    ) == (1,)


def test_poison_message_goes_to_dlq_and_partition_moves_on(
    handler: tuple[Bus, Child], database: str
) -> None:
    bus, _ = handler
    bus.send(None, raw=b"\x00not-protobuf\xff")
    after = reading(unique("after-poison"), 5.0, 1)
    bus.send(after)
    eventually(
        lambda: state(database, "sensor_state", after.aggregate_id), what="event after poison"
    )
    row = fetch_one(
        database,
        "SELECT error_message, status FROM eventhandler.dlq WHERE event_payload = %s",
        (b"\x00not-protobuf\xff",),
    )
    assert row is not None and "undecodable" in row[0] and row[1] == "pending"


def foreign_envelope(event_id: str, agg: str, payload: dict[str, Any]) -> bytes:
    """An envelope as another producer might write it: built with Protobuf directly, no
    platform validation (a NUL in a string, an id spelled as PostgreSQL cannot read it)."""
    env = events_pb2.EventEnvelope(event_id=event_id, event_type="sensor.reading", aggregate_id=agg)
    env.event_time.FromDatetime(T0)
    env.ingested_at.FromDatetime(T0)
    env.payload.update(payload)
    return env.SerializeToString()


def produce_raw(bus: Bus, key: str, value: bytes) -> None:
    """Another producer on the bus: confluent_kafka, its own client, no codec."""
    producer = Producer({"bootstrap.servers": bus.brokers})
    producer.produce(bus.topics["sensor"], key=key.encode(), value=value)
    assert producer.flush(10) == 0


def dead_letters(db: str, event_id: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db) as conn:
        return conn.execute(
            "SELECT consumer, error_message, status, event_payload, retry_count "
            "FROM eventhandler.dlq "
            "WHERE event_id = %s",
            (event_id,),
        ).fetchall()


@pytest.mark.parametrize(
    ("what", "event_id", "payload"),
    [
        ("a NUL in a string", None, {"value": 1.0, "unit": "C\x00"}),
        ("a NUL in a key", None, {"va\x00lue": 1.0}),
        ("an id PostgreSQL cannot read", "urn:uuid:", {"value": 1.0}),
    ],
)
def test_a_value_the_database_refuses_is_dead_lettered_and_the_stream_goes_on(
    handler: tuple[Bus, Child], database: str, what: str, event_id: str | None, payload: Any
) -> None:
    bus, child = handler
    agg = unique("foreign")
    good_id = str(uuid_utils.uuid7())
    bad_id = str(uuid_utils.uuid7())
    raw = foreign_envelope((event_id or "") + bad_id, agg, payload)
    produce_raw(bus, agg, raw)
    # The same poison event redelivered (the producer sent it twice): still one letter.
    produce_raw(bus, agg, raw)
    # Another device's reading (a newer one for the same row would supersede the poison
    # event in a shared batch: newer-wins, never written), with the same key: same
    # partition, after it.
    after = reading(agg + "-after", 5.0, 1, event_id=good_id)
    produce_raw(bus, agg, encode_event(after))
    row = eventually(
        lambda: state(database, "sensor_state", after.aggregate_id),
        what=f"the event after the one with {what} ({child.tail(20)})",
    )
    assert row[1] == good_id and row[0] == {"value": 5.0, "unit": "C"}
    # Both copies counted (its dead letter is written after the batch's accepted updates
    # when the batch has to be applied event by event).
    letters = eventually(
        lambda: [r for r in dead_letters(database, bad_id) if r[4] == 1] or None,
        what="one dead letter for both copies",
    )
    assert len(dead_letters(database, bad_id)) == 1
    consumer, error, status, stored, _ = letters[0]
    assert consumer == child.env_group and status == "pending" and bytes(stored) == raw  # type: ignore[attr-defined]
    assert "the database refused a value" in error and "\x00" not in error, error


def test_database_outage_blocks_then_resumes(broker: EmbeddedBroker, tmp_path: Path) -> None:
    from services.cli.embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(tmp_path / "pg", free_port(), tmp_path / "pg.log")
    pg.start()
    topics = {"sensor": unique("t-outage")}
    ensure_topics(broker.bootstrap, list(topics.values()), partitions=1)
    port = free_port()
    env = {
        "CJ_EVENTHANDLER_DATABASE_URL": pg.url,
        "CJ_REDPANDA_BROKERS": broker.bootstrap,
        "CJ_EVENTHANDLER_PORT": str(port),
        "CJ_EVENTHANDLER_TOPICS": topics["sensor"],
        "CJ_EVENTHANDLER_CONSUMER_GROUP": unique("group"),
    }
    try:
        with service_process("eventhandler", env, tmp_path, f"127.0.0.1:{port}") as child:
            bus = Bus(broker.bootstrap, topics)
            first = reading(unique("o"), 1.0, 1)
            bus.send(first)
            eventually(lambda: state(pg.url, "sensor_state", first.aggregate_id), what="first")
            pg.stop()
            during = reading(unique("o"), 2.0, 2)
            bus.send(during)
            eventually(
                lambda: "blocking without committing" in child.tail(50), what="outage logged"
            )
            pg.start()
            eventually(
                lambda: state(pg.url, "sensor_state", during.aggregate_id),
                timeout=30,
                what="resume",
            )
            assert child.tail(200).count("blocking without committing") == 1
    finally:
        pg.stop()


def dlq_stub(child_port: int) -> dlq_pb2_grpc.DeadLetterServiceStub:
    return dlq_pb2_grpc.DeadLetterServiceStub(grpc.insecure_channel(f"127.0.0.1:{child_port}"))


@pytest.fixture(scope="module")
def dlq(handler: tuple[Bus, Child]) -> dlq_pb2_grpc.DeadLetterServiceStub:
    return dlq_stub(handler[1].env_port)  # type: ignore[attr-defined]


def test_dlq_api_lists_replays_and_discards(
    handler: tuple[Bus, Child], database: str, dlq: dlq_pb2_grpc.DeadLetterServiceStub
) -> None:
    bus, _ = handler
    poison = b"\x00still-not-protobuf-" + unique("p").encode()
    bus.send(None, raw=poison)
    row = eventually(
        lambda: fetch_one(
            database,
            "SELECT dlq_id::text, consumer FROM eventhandler.dlq WHERE event_payload = %s",
            (poison,),
        ),
        what="poison message in the DLQ",
    )
    dlq_id, consumer = str(row[0]), str(row[1])
    page = dlq.ListDeadLetters(
        dlq_pb2.ListDeadLettersRequest(
            filter=dlq_pb2.DeadLetterFilter(consumer=consumer, status="pending"), limit=100
        )
    )
    assert dlq_id in [d.dlq_id for d in page.dead_letters] and page.total >= 1
    one = dlq.GetDeadLetter(dlq_pb2.GetDeadLetterRequest(dlq_id=dlq_id))
    assert (
        "undecodable" in one.error_message and one.event_id == "" and one.size_bytes == len(poison)
    )
    # Undecodable bytes stay poison: the replay fails and the letter stays pending.
    failed = dlq.ReplayDeadLetters(dlq_pb2.ReplayDeadLettersRequest(dlq_ids=[dlq_id]))
    assert (failed.replayed, failed.failed) == (0, 1)
    again = dlq.GetDeadLetter(dlq_pb2.GetDeadLetterRequest(dlq_id=dlq_id))
    assert (again.status, again.retry_count) == ("pending", 1)
    discarded = dlq.DiscardDeadLetters(dlq_pb2.DiscardDeadLettersRequest(dlq_ids=[dlq_id]))
    assert discarded.discarded == 1
    skipped = dlq.ReplayDeadLetters(dlq_pb2.ReplayDeadLettersRequest(dlq_ids=[dlq_id]))
    assert skipped.outcomes[0].status == "skipped"


def test_replaying_after_the_cause_is_fixed_applies_the_event(
    handler: tuple[Bus, Child], database: str, dlq: dlq_pb2_grpc.DeadLetterServiceStub
) -> None:
    """A letter left by an earlier failure (say, a projector bug since fixed) is applied by
    the current projectors, newer-wins, and marked replayed exactly once."""
    event = reading(unique("dlq-fixed"), 77.0, 5)
    with psycopg.connect(database, autocommit=True) as conn:
        dlq_id = conn.execute(
            "INSERT INTO eventhandler.dlq (consumer, event_id, event_payload, error_message) "
            "VALUES ('event-handler', %s, %s, 'projection failed after retries: bug #12') "
            "RETURNING dlq_id::text",
            (event.event_id, encode_event(event)),
        ).fetchone()[0]  # type: ignore[index]
    view = dlq.GetDeadLetter(dlq_pb2.GetDeadLetterRequest(dlq_id=dlq_id))
    assert (view.event_type, view.aggregate_id) == ("sensor.reading", event.aggregate_id)
    done = dlq.ReplayDeadLetters(
        dlq_pb2.ReplayDeadLettersRequest(
            filter=dlq_pb2.DeadLetterFilter(consumer="event-handler"), limit=1000
        )
    )
    assert dlq_id in [o.dlq_id for o in done.outcomes if o.status == "replayed"]
    got = state(database, "sensor_state", event.aggregate_id)
    assert got is not None and got[0] == {"value": 77.0, "unit": "C"} and got[1] == event.event_id
    assert dlq.GetDeadLetter(dlq_pb2.GetDeadLetterRequest(dlq_id=dlq_id)).status == "replayed"


@pytest.mark.parametrize(
    ("call", "code", "message"),
    [
        (
            lambda s: s.GetDeadLetter(dlq_pb2.GetDeadLetterRequest(dlq_id="nope")),
            "INVALID_ARGUMENT",
            "not a UUID",
        ),
        (
            lambda s: s.GetDeadLetter(dlq_pb2.GetDeadLetterRequest(dlq_id=str(uuid_utils.uuid7()))),
            "NOT_FOUND",
            "no dead letter",
        ),
        (
            lambda s: s.ListDeadLetters(
                dlq_pb2.ListDeadLettersRequest(filter=dlq_pb2.DeadLetterFilter(status="bogus"))
            ),
            "INVALID_ARGUMENT",
            "not one of pending",
        ),
        (
            lambda s: s.ListDeadLetters(dlq_pb2.ListDeadLettersRequest(limit=0)),
            "INVALID_ARGUMENT",
            "between 1 and 100",
        ),
        (
            lambda s: s.DiscardDeadLetters(dlq_pb2.DiscardDeadLettersRequest()),
            "INVALID_ARGUMENT",
            "dlq_ids is required",
        ),
        (
            lambda s: s.ReplayDeadLetters(
                dlq_pb2.ReplayDeadLettersRequest(filter=dlq_pb2.DeadLetterFilter(status="replayed"))
            ),
            "INVALID_ARGUMENT",
            "only pending",
        ),
    ],
)
def test_dlq_api_rejects_bad_requests_precisely(
    dlq: dlq_pb2_grpc.DeadLetterServiceStub, call: Any, code: str, message: str
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        call(dlq)
    assert err.value.code().name == code
    assert message in (err.value.details() or "")


def test_sigterm_drains_and_exits_cleanly(handler: tuple[Bus, Child]) -> None:
    _, child = handler
    assert child.alive()
    assert child.stop(deadline=15) == 0
    assert "consumer closed" in child.tail(20)
