"""The hand-written Struct/Value/Timestamp converters agree with protobuf's json_format and
Timestamp helpers (they replace them on the hot paths, ADR 0012)."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2, timestamp_pb2

from services.core import json_text
from services.infra.codec import (
    DecodeError,
    decode_event,
    from_struct,
    from_timestamp,
    from_value,
    to_struct,
    to_timestamp,
    to_value,
)

PAYLOADS: list[dict[str, Any]] = [
    {},
    {"value": 21.5, "unit": "C"},
    {"n": 0.0, "neg": -3.25, "big": 1e300, "tiny": 5e-324, "int_like": 7.0},
    {"s": "", "u": "grüße 🌡", "ctl": 'a\nb\tc\\"d', "nul": "\x00"},
    {"t": True, "f": False, "none": None},
    {"nested": {"a": {"b": {"c": [1.0, "x", None, True, {"d": []}]}}}, "empty": {}},
    {"list": [[], [[]], [1.5, [2.5]]], "mixed": [{"k": "v"}, None]},
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_to_struct_matches_json_format(payload: dict[str, Any]) -> None:
    expected = struct_pb2.Struct()
    json_format.ParseDict(payload, expected)
    assert to_struct(payload) == expected
    assert to_struct(payload).SerializeToString(deterministic=True) == expected.SerializeToString(
        deterministic=True
    )


@pytest.mark.parametrize("payload", PAYLOADS)
def test_from_struct_and_from_value_match_json_format(payload: dict[str, Any]) -> None:
    s = struct_pb2.Struct()
    json_format.ParseDict(payload, s)
    assert from_struct(s) == json_format.MessageToDict(s) == payload
    v = struct_pb2.Value(struct_value=s)
    assert from_value(v) == json_format.MessageToDict(v)
    assert from_value(to_value(payload)) == payload


def test_unset_and_null_values_are_none() -> None:
    assert from_value(struct_pb2.Value()) is None
    assert from_value(struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)) is None
    assert from_value(to_value([1.0, None])) == [1.0, None]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers(bad: float) -> None:
    # from_struct (the bus side) refuses them; from_value (ingestion) passes them on so
    # validation can refuse them with its own message.
    s = struct_pb2.Struct()
    s.fields["deep"].struct_value.fields["x"].number_value = bad
    with pytest.raises(ValueError, match="finite"):
        from_struct(s)
    got = from_value(struct_pb2.Value(number_value=bad))
    assert got != got if math.isnan(bad) else got == bad
    with pytest.raises(ValueError, match="non-finite"):
        json_text.encode_payload({"a": [1.0, {"b": bad}]})


def test_to_value_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(ValueError, match="not a JSON value"):
        to_value({"when": datetime.now(UTC)})


def test_timestamps_match_protobuf_helpers() -> None:
    rng = random.Random(7)
    base = datetime(1970, 1, 1, tzinfo=UTC)
    samples = [
        base,
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
        datetime(2026, 11, 27, 15, 0, 0, 123456, tzinfo=timezone(timedelta(hours=-5))),
    ] + [base + timedelta(microseconds=rng.randrange(-(10**16), 10**17)) for _ in range(200)]
    for dt in samples:
        expected = timestamp_pb2.Timestamp()
        expected.FromDatetime(dt)
        assert to_timestamp(dt) == expected, dt
        assert from_timestamp(expected) == expected.ToDatetime(tzinfo=UTC) == dt
    naive = datetime(2026, 1, 2, 3, 4, 5, 6)
    assert to_timestamp(naive) == to_timestamp(naive.replace(tzinfo=UTC))


def test_sub_microsecond_digits_are_dropped_and_range_is_checked() -> None:
    ts = timestamp_pb2.Timestamp(seconds=10, nanos=999)
    assert from_timestamp(ts) == ts.ToDatetime(tzinfo=UTC)
    for bad in (
        timestamp_pb2.Timestamp(seconds=253_402_300_800),
        timestamp_pb2.Timestamp(seconds=-62_135_596_801),
        timestamp_pb2.Timestamp(seconds=0, nanos=1_000_000_000),
    ):
        with pytest.raises(ValueError, match="out of range"):
            from_timestamp(bad)


def test_envelope_with_unusable_fields_is_a_decode_error() -> None:
    from cornjacket.v1 import events_pb2

    env = events_pb2.EventEnvelope(
        event_id="01a21c3d-a9b4-70de-94e0-909f717c8446", event_type="a.b", aggregate_id="x"
    )
    env.payload.fields["v"].number_value = math.nan
    with pytest.raises(DecodeError, match="finite"):
        decode_event(env.SerializeToString())
    env.payload.fields["v"].number_value = 1.0
    env.event_time.seconds = 10**12
    with pytest.raises(DecodeError, match="out of range"):
        decode_event(env.SerializeToString())


def test_json_text_round_trips_and_falls_back() -> None:
    data = {"a": [1.5, "ü", None, True], "b": {"c": "\x00"}}
    assert json_text.loads(json_text.dumps(data)) == data
    assert json_text.dumps({"big": 2**70}) == '{"big":1180591620717411303424}'
    assert json_text.loads("[1e400]") == [math.inf]
    assert json_text.loads(memoryview(b'{"x":1}')) == {"x": 1}
    assert "\\u0000" in json_text.encode_payload({"nul": "\x00"})
    assert json_text.encode_payload({"n": None, "s": "NaN"}) == '{"n":null,"s":"NaN"}'
