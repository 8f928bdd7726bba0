"""The bus codec: events round trip through the Protobuf envelope for generated payloads
(unicode, deep nesting within the limit, every JSON type); numbers JSON or a double cannot
carry, and bytes that are not an envelope, fail with the codec's own clear errors."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from services.core.events import Event, Metadata
from services.infra.codec import DecodeError, decode_event, encode_event, to_struct, to_value
from services.mqtt.decoding import MAX_PAYLOAD_DEPTH
from tests.fuzz.strategies import KEYS, NUMBERS, OBJECTS, TEXT, json_values
from tests.fuzz.tally import Crash, Tally

pytestmark = pytest.mark.fuzz

TIMES = st.datetimes(
    min_value=datetime(1, 1, 1),
    max_value=datetime(9999, 12, 31, 23, 59, 59),
    timezones=st.just(UTC),
)
BIG_OBJECTS = st.dictionaries(
    KEYS,
    json_values(st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=2000)), leaves=80),
    max_size=20,
)


@st.composite
def deep(draw: st.DrawFn) -> dict[str, Any]:
    """Objects and arrays nested up to the depth ingestion accepts (the payload itself is
    the first level)."""
    value: Any = draw(st.one_of(NUMBERS, TEXT, st.none()))
    for _ in range(draw(st.integers(1, MAX_PAYLOAD_DEPTH - 1))):
        value = draw(
            st.sampled_from([lambda v: [v, 1], lambda v: {"k": v}, lambda v: {"": v, "ü": 1}])
        )(value)
    return {"deep": value}


def _event(payload: dict[str, Any], when: datetime, at: datetime, trace: str) -> Event:
    return Event(
        event_id=str(uuid.uuid4()),
        event_type="sensor.reading",
        aggregate_id="dev-1",
        event_time=when,
        ingested_at=at,
        payload=payload,
        metadata=Metadata(trace_id=trace, source="mqtt", span_id="ab" * 8),
    )


def _as_json_numbers(value: Any) -> Any:
    """Struct numbers are doubles: 3 comes back as 3.0 (equal, so == already agrees)."""
    if isinstance(value, dict):
        return {k: _as_json_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json_numbers(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


@given(
    payload=st.one_of(OBJECTS, BIG_OBJECTS, deep()),
    when=TIMES,
    at=TIMES,
    trace=TEXT,
)
def test_events_round_trip(
    tally: Tally, payload: dict[str, Any], when: datetime, at: datetime, trace: str
) -> None:
    with tally.attack("codec: event round trip"):
        event = _event(payload, when, at, trace)
        try:
            back = decode_event(encode_event(event))
        except Exception as e:
            raise Crash(f"{type(e).__name__}: {e}") from e
        assert back == event
        assert back.payload == _as_json_numbers(payload)
        assert all(
            type(a) is type(b)
            for a, b in zip(_leaves(back.payload), _leaves(_as_json_numbers(payload)), strict=True)
        )


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for k in sorted(value) for x in _leaves(value[k])]
    if isinstance(value, list):
        return [x for v in value for x in _leaves(v)]
    return [value]


@given(
    number=st.one_of(
        st.integers(min_value=2**1024, max_value=10**6000),
        st.integers(max_value=-(2**1024), min_value=-(10**600)),
    ),
    where=st.sampled_from(["top", "list", "nested"]),
)
@example(10**400, "top").via("regression: OverflowError from the codec")
@example(-(10**5000), "list").via("regression: more digits than str() writes")
def test_numbers_beyond_a_double_are_a_clear_error(tally: Tally, number: int, where: str) -> None:
    payloads: dict[str, dict[str, Any]] = {
        "top": {"n": number},
        "list": {"n": [1, number]},
        "nested": {"a": {"b": number}},
    }
    payload = payloads[where]
    with tally.attack("codec: numbers beyond a double"):
        for encode in (to_struct, to_value, lambda p: encode_event(_event(p, _T, _T, ""))):
            try:
                encode(payload)
            except ValueError as e:
                assert "double" in str(e), e
            except Exception as e:
                raise Crash(f"{type(e).__name__}: {e}") from e
            else:
                raise AssertionError(f"{number} was encoded")


_T = datetime(2026, 1, 2, tzinfo=UTC)


@given(value=st.sampled_from([math.nan, math.inf, -math.inf]), payload=OBJECTS, key=KEYS)
def test_non_finite_numbers_are_refused_when_decoded(
    tally: Tally, value: float, payload: dict[str, Any], key: str
) -> None:
    """JSON cannot carry NaN or Infinity: an envelope holding one is a poison message."""
    with tally.attack("codec: non-finite numbers"):
        data = encode_event(_event({**payload, key: [value]}, _T, _T, ""))
        with pytest.raises(DecodeError, match="finite"):
            decode_event(data)


@given(data=st.binary(max_size=400))
def test_random_bytes_are_an_event_or_a_decode_error(tally: Tally, data: bytes) -> None:
    _decode(tally, "codec: random bytes", data)


REAL = encode_event(_event({"value": 21.5, "unit": "°C", "tags": ["a", {"b": None}]}, _T, _T, "t"))


@given(
    cut=st.integers(0, len(REAL)),
    flips=st.lists(st.tuples(st.integers(0, len(REAL) - 1), st.integers(1, 255)), max_size=4),
)
def test_truncated_and_altered_envelopes(
    tally: Tally, cut: int, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(REAL)
    for i, x in flips:
        data[i] ^= x
    _decode(tally, "codec: altered envelopes", bytes(data[:cut] if cut % 2 else data))


def _decode(tally: Tally, target: str, data: bytes) -> None:
    with tally.attack(target):
        try:
            event = decode_event(data)
        except DecodeError as e:
            assert str(e)
            return
        except Exception as e:
            raise Crash(f"{type(e).__name__}: {e}") from e
        uuid.UUID(event.event_id)
        assert event.event_time.tzinfo is not None and event.event_time - _T < timedelta(days=4e6)
