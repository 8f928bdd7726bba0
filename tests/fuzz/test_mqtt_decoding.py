"""The MQTT body decoder: any bytes become events or its own DecodeError, and the events it
returns can be carried to ingestion (the gateway's next step: a Protobuf Struct)."""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

import pytest
from cornjacket.v1 import ingestion_pb2
from google.protobuf import struct_pb2
from hypothesis import example, given
from hypothesis import strategies as st

from services.mqtt.decoding import (
    BATCH_EVENT_FIELDS,
    ENVELOPE_FIELDS,
    MAX_PAYLOAD_DEPTH,
    DecodeError,
    decode,
)
from services.mqtt.topics import Address, Form
from tests.fuzz.strategies import JSON, OBJECTS, ODD_NUMBERS, TEXT, dumps, nested
from tests.fuzz.tally import Crash, Tally

pytestmark = pytest.mark.fuzz

ADDRESSES = st.sampled_from(
    [
        Address(Form.PAYLOAD, "sensor.reading", "dev-1"),
        Address(Form.ENVELOPE, "sensor.reading", "dev-1"),
        Address(Form.BATCH),
    ]
)
keys = itertools.count()

# Regressions the fuzzing found (each crashed the decoder or the gateway behind it).
HUGE_DIGITS = b'{"n": ' + b"9" * 5000 + b"}"  # int() refuses > 4300 digits: ValueError
DEEP = b'{"n": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"  # RecursionError
BEYOND_DOUBLE = b'{"n": ' + str(10**400).encode() + b"}"  # OverflowError in the gateway
OVERFLOWING_FLOAT = b'{"n": 1e400}'  # became inf: a non-finite payload


def _carry(payload: dict[str, Any]) -> None:
    """What the gateway's ingest client does with a payload; it refuses the event on a
    ValueError (text Protobuf cannot hold, such as a lone surrogate), nothing else."""
    with contextlib.suppress(UnicodeEncodeError):
        _carry_to_ingestion(payload)


def _check(tally: Tally, target: str, address: Address, body: bytes) -> None:
    with tally.attack(target):
        try:
            events, ack = decode(address, body, new_key=lambda: f"k{next(keys)}", max_events=50)
        except DecodeError as e:
            assert e.code in ("invalid_json", "invalid_body") and str(e), e
            return
        except Exception as e:
            raise Crash(f"decode raised {type(e).__name__}: {e}") from e
        assert isinstance(ack, bool) and events
        for ev in events:
            assert isinstance(ev.payload, dict) and ev.idempotency_key
            try:
                _carry(ev.payload)
            except Exception as e:
                raise Crash(f"a decoded payload cannot be carried: {type(e).__name__}: {e}") from e


@given(address=ADDRESSES, body=st.binary(max_size=300))
def test_any_bytes(tally: Tally, address: Address, body: bytes) -> None:
    _check(tally, "mqtt decoder: random bytes", address, body)


@given(address=ADDRESSES, value=JSON)
def test_any_json(tally: Tally, address: Address, value: Any) -> None:
    _check(tally, "mqtt decoder: random JSON", address, dumps(value))


def _field_values() -> st.SearchStrategy[Any]:
    return st.one_of(JSON, OBJECTS, TEXT, st.sampled_from(["2026-01-02T03:04:05Z", "2026-01-02"]))


ENVELOPES = st.dictionaries(
    st.one_of(st.sampled_from(sorted(ENVELOPE_FIELDS)), TEXT), _field_values(), max_size=6
)
BATCH_EVENTS = st.dictionaries(
    st.one_of(st.sampled_from(sorted(BATCH_EVENT_FIELDS)), TEXT), _field_values(), max_size=7
)
BATCHES = st.fixed_dictionaries(
    {"events": st.one_of(st.lists(BATCH_EVENTS, max_size=4), JSON)},
    optional={"ack": st.one_of(st.booleans(), JSON)},
)


@given(address=ADDRESSES, doc=st.one_of(OBJECTS, ENVELOPES, BATCHES))
def test_shaped_bodies(tally: Tally, address: Address, doc: dict[str, Any]) -> None:
    """Bodies shaped like the three forms, with fields of every type."""
    _check(tally, "mqtt decoder: shaped bodies", address, dumps(doc))


@given(address=ADDRESSES, number=ODD_NUMBERS, depth=nested())
@example(Address(Form.PAYLOAD, "t", "a"), "9" * 5000, "[1]").via("regression: > 4300 digits")
@example(Address(Form.BATCH), str(10**400), "[" * 100_000).via("regression: beyond a double")
def test_big_numbers_and_deep_nesting(
    tally: Tally, address: Address, number: str, depth: str
) -> None:
    """Numbers no double holds, overlong digit strings, nesting far past any stack."""
    for body in (f'{{"payload": {{"n": {number}}}}}', f'{{"n": {number}}}', f'{{"n": {depth}}}'):
        _check(tally, "mqtt decoder: big numbers, deep nesting", address, body.encode())


@pytest.mark.parametrize(
    "body",
    [HUGE_DIGITS, DEEP, BEYOND_DOUBLE, OVERFLOWING_FLOAT],
    ids=["5000 digits", "100000 deep", "10**400", "1e400"],
)
def test_regressions_are_refused_as_invalid_json(tally: Tally, body: bytes) -> None:
    with tally.attack("mqtt decoder: regressions"):
        with pytest.raises(DecodeError) as caught:
            decode(Address(Form.PAYLOAD, "t", "a"), body, new_key=lambda: "k", max_events=1)
        assert caught.value.code == "invalid_json", caught.value


def _nest(depth: int, container: str) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"k": value} if container == "object" else [value]
    return value


@pytest.mark.parametrize("container", ["object", "array"])
def test_payload_nesting_is_refused_past_what_ingestion_carries(
    tally: Tally, container: str
) -> None:
    """Found by the fuzzing: a payload 40 to 900 levels deep decoded, then failed every
    call to ingestion (RecursionError or a Protobuf limit) and blocked the gateway."""
    with tally.attack("mqtt decoder: regressions"):
        address = Address(Form.PAYLOAD, "t", "a")
        deepest = {"k": _nest(MAX_PAYLOAD_DEPTH - 1, container)}
        (event,), _ = decode(address, dumps(deepest), new_key=lambda: "k", max_events=1)
        _carry_to_ingestion(event.payload)
        with pytest.raises(DecodeError, match=f"deeper than {MAX_PAYLOAD_DEPTH} levels") as e:
            decode(address, dumps({"k": deepest}), new_key=lambda: "k", max_events=1)
        assert e.value.code == "invalid_body"


def _carry_to_ingestion(payload: dict[str, Any]) -> None:
    """Encoded and parsed as ingestion's gRPC server parses the gateway's call."""
    value = struct_pb2.Value()
    value.struct_value.update(payload)
    request = ingestion_pb2.IngestEventsRequest(
        events=[ingestion_pb2.IngestEventRequest(event_type="t", aggregate_id="a", payload=value)]
    )
    ingestion_pb2.IngestEventsRequest.FromString(request.SerializeToString())
