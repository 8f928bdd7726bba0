"""The dead-letter queue against a real PostgreSQL: the handler's writes (one row per poison
event, however often it is redelivered) and the operator's replay/discard by ids."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
import uuid_utils

from services.core.errors import InvalidInput
from services.core.events import Event
from services.eventhandler.dead_letters import MAX_REPLAY, DeadLetterService
from services.eventhandler.dlq_store import PostgresDeadLetterStore
from services.eventhandler.projection_store import PostgresProjectionStore
from services.eventhandler.projectors import default_registry
from services.eventhandler.service import DeadLetter
from services.infra import migrations
from services.infra.codec import decode_event, encode_event
from tests.support import unique

pytestmark = pytest.mark.component

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def db(database: str) -> str:
    migrations.apply(database, "eventhandler")
    return database


@pytest.fixture
def service(db: str) -> Iterator[DeadLetterService]:
    store = PostgresDeadLetterStore(db)
    store.open()
    try:
        yield DeadLetterService(store, default_registry(), decode_event, lambda: T0)
    finally:
        store.close()


def pending_letters(db: str, n: int) -> tuple[list[str], list[Event]]:
    """``n`` pending dead letters of good readings (a projector bug since fixed, say)."""
    events = [
        Event(str(uuid_utils.uuid7()), "sensor.reading", unique("dev"), T0, T0, {"value": float(i)})
        for i in range(n)
    ]
    with psycopg.connect(db, autocommit=True) as conn:
        ids = [
            conn.execute(
                "INSERT INTO eventhandler.dlq (consumer, event_id, event_payload, error_message) "
                "VALUES ('event-handler', %s, %s, 'bug') RETURNING dlq_id::text",
                (e.event_id, encode_event(e)),
            ).fetchone()[0]  # type: ignore[index]
            for e in events
        ]
    return ids, events


def test_replay_by_ids_handles_every_id_given(db: str, service: DeadLetterService) -> None:
    """More ids than the default limit (100): none may be reported 'not found or not
    pending' while it is pending."""
    ids, events = pending_letters(db, 150)
    outcomes = service.replay(ids, None, None)
    assert [o.dlq_id for o in outcomes] == ids
    assert [o for o in outcomes if o.status != "replayed"] == []
    with psycopg.connect(db) as conn:
        applied = conn.execute(
            "SELECT count(*) FROM eventhandler.projections WHERE aggregate_id = ANY(%s)",
            ([e.aggregate_id for e in events],),
        ).fetchone()
    assert applied == (150,)


def test_replay_by_ids_ignores_the_selection_limit(db: str, service: DeadLetterService) -> None:
    """``limit`` bounds a filter's selection; named ids are all handled (the CLI always
    sends its --limit default)."""
    ids, _ = pending_letters(db, 3)
    outcomes = service.replay(ids, None, 1)
    assert [o.status for o in outcomes] == ["replayed"] * 3


def test_replay_by_ids_reports_unknown_and_settled_ids_and_repeats_once(
    db: str, service: DeadLetterService
) -> None:
    ids, _ = pending_letters(db, 2)
    service.discard(ids[1:])
    missing = str(uuid_utils.uuid7())
    outcomes = service.replay([ids[0], ids[1], missing, ids[0]], None, None)
    assert [(o.dlq_id, o.status, o.error) for o in outcomes] == [
        (ids[0], "replayed", ""),
        (ids[1], "skipped", "not found or not pending"),
        (missing, "skipped", "not found or not pending"),
    ]


def test_too_many_ids_are_refused_naming_the_maximum(service: DeadLetterService) -> None:
    ids = [str(uuid_utils.uuid7()) for _ in range(MAX_REPLAY + 1)]
    with pytest.raises(InvalidInput, match=f"at most {MAX_REPLAY} dlq_ids"):
        service.replay(ids, None, None)
    with pytest.raises(InvalidInput, match=f"at most {MAX_REPLAY} dlq_ids"):
        service.discard(ids)


def test_discard_by_ids_handles_every_id_given(db: str, service: DeadLetterService) -> None:
    ids, _ = pending_letters(db, 150)
    outcomes = service.discard(ids)
    assert [(o.dlq_id, o.status) for o in outcomes] == [(i, "discarded") for i in ids]


def letters(db: str, consumer: str, where: str, param: object) -> list[tuple[object, ...]]:
    with psycopg.connect(db) as conn:
        return conn.execute(
            "SELECT status, retry_count, error_message FROM eventhandler.dlq "
            f"WHERE consumer = %s AND {where} ORDER BY failed_at",
            (consumer, param),
        ).fetchall()


def test_a_redelivered_poison_event_keeps_one_row_and_counts_the_attempt(db: str) -> None:
    """Decision: a redelivery of a pending letter updates it (retry_count + 1, the latest
    error) rather than adding a row or being dropped silently."""
    consumer = unique("consumer")
    store = PostgresProjectionStore(db, consumer)
    event = Event(str(uuid_utils.uuid7()), "sensor.reading", "d", T0, T0, {"value": 1.0})
    raw = encode_event(event)
    try:
        store.apply([], [DeadLetter(event.event_id, raw, "first")], T0)
        store.apply([], [DeadLetter(event.event_id, raw, "second")], T0)
        # Twice in one batch (the producer sent it twice) is one more attempt each.
        store.apply(
            [], [DeadLetter(event.event_id, raw, "third"), DeadLetter(event.event_id, raw, "4")], T0
        )
        # Another consumer's letter for the same event is its own row.
        PostgresProjectionStore(db, consumer + "-other").apply(
            [], [DeadLetter(event.event_id, raw, "x")], T0
        )
    finally:
        store.close()
    assert letters(db, consumer, "event_id = %s", event.event_id) == [("pending", 3, "4")]
    assert len(letters(db, consumer + "-other", "event_id = %s", event.event_id)) == 1


def test_a_redelivered_undecodable_message_keeps_one_row(db: str) -> None:
    """No event id to key on: the same bytes are the same letter."""
    consumer = unique("consumer")
    store = PostgresProjectionStore(db, consumer)
    raw = b"\x00not-an-envelope-" + unique("p").encode()
    try:
        store.apply([], [DeadLetter(None, raw, "undecodable message: a")], T0)
        store.apply([], [DeadLetter(None, raw, "undecodable message: b")], T0)
        store.apply([], [DeadLetter(None, raw + b"!", "undecodable message: c")], T0)
    finally:
        store.close()
    assert letters(db, consumer, "event_payload = %s", raw) == [
        ("pending", 1, "undecodable message: b")
    ]
    assert len(letters(db, consumer, "event_payload = %s", raw + b"!")) == 1


def test_a_settled_letter_is_left_alone_by_a_redelivery(
    db: str, service: DeadLetterService
) -> None:
    consumer = unique("consumer")
    store = PostgresProjectionStore(db, consumer)
    event = Event(str(uuid_utils.uuid7()), "sensor.reading", "d", T0, T0, {"value": 1.0})
    letter = DeadLetter(event.event_id, encode_event(event), "bug")
    try:
        store.apply([], [letter], T0)
        with psycopg.connect(db) as conn:
            row = conn.execute(
                "SELECT dlq_id::text FROM eventhandler.dlq WHERE consumer = %s", (consumer,)
            ).fetchone()
        assert row is not None
        service.discard([row[0]])
        store.apply([], [letter], T0)
    finally:
        store.close()
    assert letters(db, consumer, "event_id = %s", event.event_id) == [("discarded", 0, "bug")]


def test_replaying_a_letter_the_database_refuses_fails_it_and_goes_on(
    db: str, service: DeadLetterService
) -> None:
    """A dead letter of another producer's event with a NUL: its replay fails (it stays
    pending, the reason recorded) and the other ids of the call are still replayed."""
    bad = Event(str(uuid_utils.uuid7()), "sensor.reading", unique("dev"), T0, T0, {"u": "\x00"})
    with psycopg.connect(db, autocommit=True) as conn:
        bad_id = conn.execute(
            "INSERT INTO eventhandler.dlq (consumer, event_id, event_payload, error_message) "
            "VALUES ('event-handler', %s, %s, 'refused') RETURNING dlq_id::text",
            (bad.event_id, encode_event(bad)),
        ).fetchone()[0]  # type: ignore[index]
    good_ids, _ = pending_letters(db, 1)
    outcomes = service.replay([bad_id, *good_ids], None, None)
    assert [(o.dlq_id, o.status) for o in outcomes] == [
        (bad_id, "failed"),
        (good_ids[0], "replayed"),
    ]
    assert "a value cannot be used" in outcomes[0].error
    view = service.get(bad_id)
    assert (view.record.status, view.record.retry_count) == ("pending", 1)
    assert view.record.error_message == outcomes[0].error


def test_a_letter_with_an_id_postgresql_cannot_read_or_a_nul_in_its_error_is_stored(
    db: str,
) -> None:
    consumer = unique("consumer")
    store = PostgresProjectionStore(db, consumer)
    eid = str(uuid_utils.uuid7())
    try:
        store.apply([], [DeadLetter("urn:uuid:" + eid, b"\x00raw", "KeyError: 'a\x00b'")], T0)
        store.apply([], [DeadLetter("{" + eid.upper() + "}", b"\x00raw", "again")], T0)
    finally:
        store.close()
    assert letters(db, consumer, "event_id = %s", eid) == [("pending", 1, "again")]
