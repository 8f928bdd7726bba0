"""The event handler as a real process: real broker in, real PostgreSQL out."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uuid_utils
from confluent_kafka import Producer

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


def test_sigterm_drains_and_exits_cleanly(handler: tuple[Bus, Child]) -> None:
    _, child = handler
    assert child.alive()
    assert child.stop(deadline=15) == 0
    assert "consumer closed" in child.tail(20)
