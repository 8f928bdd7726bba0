from __future__ import annotations

import itertools
import re

import pytest

from services.mqtt import topics
from services.mqtt.decoding import DecodeError, decode
from services.mqtt.topics import Address, Form, UnknownTopic

keys = itertools.count()


def new_key() -> str:
    return f"k{next(keys)}"


def test_topic_shapes() -> None:
    assert topics.parse("cornjacket/v1/events/sensor.reading/dev-1") == Address(
        Form.PAYLOAD, "sensor.reading", "dev-1"
    )
    assert topics.parse("cornjacket/v1/envelopes/user.login/u1").form is Form.ENVELOPE
    assert topics.parse("cornjacket/v1/batch") == Address(Form.BATCH)


@pytest.mark.parametrize(
    "topic",
    [
        "cornjacket/v1/events/sensor.reading",
        "cornjacket/v1/events/sensor.reading/a/b",
        "cornjacket/v1/events//dev",
        "cornjacket/v2/events/sensor.reading/dev",
        "cornjacket/v1/clients/dev/acks",
        "sensors/dev",
    ],
)
def test_unknown_topic_shapes_name_the_accepted_ones(topic: str) -> None:
    with pytest.raises(UnknownTopic, match="cornjacket/v1/batch"):
        topics.parse(topic)


@pytest.mark.parametrize(
    ("flt", "topic", "ok"),
    [
        ("cornjacket/v1/events/+/dev", "cornjacket/v1/events/sensor.reading/dev", True),
        ("cornjacket/v1/events/+/dev", "cornjacket/v1/events/sensor.reading/other", False),
        ("cornjacket/v1/events/#", "cornjacket/v1/events/a.b/c", True),
        ("cornjacket/v1/events/+", "cornjacket/v1/events/a.b/c", False),
    ],
)
def test_filter_matching(flt: str, topic: str, ok: bool) -> None:
    assert topics.matches(flt, topic) is ok


def test_subscriptions_must_stay_inside_the_allowed_filter() -> None:
    own = topics.feedback_filter("dev")
    assert topics.covers(own, "cornjacket/v1/clients/dev/errors")
    assert topics.covers(own, "cornjacket/v1/clients/dev/#")
    assert not topics.covers(own, "cornjacket/v1/clients/+/errors")
    assert not topics.covers(own, "cornjacket/v1/clients/#")
    assert not topics.covers(own, "#")


def test_payload_form_is_the_payload_object() -> None:
    events, ack = decode(
        Address(Form.PAYLOAD, "sensor.reading", "d1"),
        b'{"value": 1, "unit": "C"}',
        new_key=new_key,
        max_events=10,
    )
    assert not ack
    assert events[0].payload == {"value": 1, "unit": "C"}
    assert (events[0].event_type, events[0].aggregate_id) == ("sensor.reading", "d1")
    assert events[0].idempotency_key.startswith("k")


def test_envelope_carries_options_and_the_devices_own_key() -> None:
    events, ack = decode(
        Address(Form.ENVELOPE, "sensor.reading", "d1"),
        b'{"payload": {"value": 1}, "event_time": "2026-01-02T03:04:05Z", '
        b'"idempotency_key": "dev-key-1", "trace_id": "t1", "ack": true}',
        new_key=new_key,
        max_events=10,
    )
    assert ack
    assert events[0].idempotency_key == "dev-key-1"
    assert events[0].trace_id == "t1"
    assert events[0].event_time is not None and events[0].event_time.year == 2026


def test_batch_names_each_event() -> None:
    events, ack = decode(
        Address(Form.BATCH),
        b'{"events": [{"event_type": "a.b", "aggregate_id": "x", "payload": {}},'
        b'{"event_type": "c.d", "aggregate_id": "y", "payload": {"v": 2}}], "ack": true}',
        new_key=new_key,
        max_events=10,
    )
    assert ack and [e.aggregate_id for e in events] == ["x", "y"]
    assert len({e.idempotency_key for e in events}) == 2


@pytest.mark.parametrize(
    ("form", "body", "code", "message"),
    [
        (Form.PAYLOAD, b"{oops", "invalid_json", "not valid JSON"),
        (Form.PAYLOAD, b"\xff\xfe", "invalid_json", "not UTF-8"),
        (Form.PAYLOAD, b'{"v": NaN}', "invalid_json", "NaN is not a JSON number"),
        (Form.PAYLOAD, b"[1, 2]", "invalid_body", "must be a JSON object, got an array"),
        (Form.PAYLOAD, b"42", "invalid_body", "got a number"),
        (Form.ENVELOPE, b'{"value": 1}', "invalid_body", "unknown field 'value'"),
        (Form.ENVELOPE, b'{"payload": "x"}', "invalid_body", "'payload' must be a JSON object"),
        (Form.ENVELOPE, b'{"payload": {}, "event_time": "yesterday"}', "invalid_body", "RFC 3339"),
        (
            Form.ENVELOPE,
            b'{"payload": {}, "event_time": "2026-01-01T00:00:00"}',
            "invalid_body",
            "UTC offset",
        ),
        (
            Form.ENVELOPE,
            b'{"payload": {}, "ack": "yes"}',
            "invalid_body",
            "'ack' must be true or false",
        ),
        (Form.BATCH, b'{"events": []}', "invalid_body", "non-empty array"),
        (Form.BATCH, b'{"events": [1]}', "invalid_body", "events[0]: must be an object"),
        (
            Form.BATCH,
            b'{"events": [{"payload": {}}]}',
            "invalid_body",
            "events[0]: 'event_type' is required",
        ),
        (
            Form.BATCH,
            b'{"events": [{"event_type": "a.b", "aggregate_id": 5, "payload": {}}]}',
            "invalid_body",
            "'aggregate_id' must be a string",
        ),
    ],
)
def test_bad_bodies_say_what_to_fix(form: Form, body: bytes, code: str, message: str) -> None:
    address = Address(form, "sensor.reading", "d1") if form is not Form.BATCH else Address(form)
    with pytest.raises(DecodeError, match=re.escape(message)) as err:
        decode(address, body, new_key=new_key, max_events=10)
    assert err.value.code == code


def test_batch_size_is_limited() -> None:
    body = (
        b'{"events": ['
        + b",".join([b'{"event_type": "a.b", "aggregate_id": "x", "payload": {}}'] * 3)
        + b"]}"
    )
    with pytest.raises(DecodeError, match="at most 2 events, got 3"):
        decode(Address(Form.BATCH), body, new_key=new_key, max_events=2)
