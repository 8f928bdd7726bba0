"""Compact JSON text for the hot paths (outbox rows, projection upserts, jsonb reads).

orjson encodes and decodes several times faster than the standard library, and every event
passes through JSON three or four times between ingest and projection (ADR 0012). Where
orjson refuses a value the standard library accepts (integers beyond 64 bits, non-string
keys, numbers beyond a double) the standard library takes over, so behaviour stays the
standard library's. One difference stays: orjson writes non-ASCII text as UTF-8, not escaped.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson


def dumps(data: Any) -> str:
    """Compact JSON text. Non-finite floats are written as null: check with all_finite first
    where that matters (encode_payload does)."""
    try:
        return orjson.dumps(data).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(data, separators=(",", ":"))


def loads(text: str | bytes | bytearray | memoryview) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(bytes(text) if isinstance(text, memoryview) else text)


def all_finite(data: Any) -> bool:
    """No NaN or Infinity anywhere in a JSON-shaped value."""
    t = type(data)
    if t is float:
        return math.isfinite(data)
    if t is dict:
        return all(all_finite(x) for x in data.values())
    if t is list or t is tuple:
        return all(all_finite(x) for x in data)
    return True


def encode_payload(payload: Any) -> str:
    """Raises ValueError for a non-finite number, which JSON (and jsonb) cannot hold."""
    text = dumps(payload)
    # orjson writes NaN and Infinity as null (the fallback as NaN / Infinity): only text
    # with one of these needs the walk.
    suspect = "null" in text or "NaN" in text or "Infinity" in text
    if suspect and not all_finite(payload):
        raise ValueError("non-finite number")
    return text
