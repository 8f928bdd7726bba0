"""The condition language: what matches, and how mistakes are reported."""

from __future__ import annotations

from typing import Any

import pytest

from services.actions.conditions import ConditionError, parse

EVENT: dict[str, Any] = {
    "event_type": "sensor.reading",
    "aggregate_id": "dev-1",
    "payload": {
        "value": 85,
        "unit": "C",
        "level": "critical",
        "ok": True,
        "nested": {"deep": {"x": 2.5}},
        "none": None,
    },
    "metadata": {"source": "http"},
}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("", True),
        ("payload.value > 80", True),
        ("payload.value > 85", False),
        ("payload.value >= 85", True),
        ("payload.value < 90.5", True),
        ("payload.value <= 84", False),
        ("payload.value == 85.0", True),
        ("payload.value != 85", False),
        ('payload.level == "critical"', True),
        ("payload.level == 'critical'", True),
        ('payload.level != "critical"', False),
        ("payload.nested.deep.x == 2.5", True),
        ("payload.missing == null", True),
        ("payload.none == null", True),
        ("payload.missing > 1", False),
        ('payload.value > "80"', False),
        ("payload.ok", True),
        ("payload.ok == true", True),
        ("payload.ok == 1", False),
        ("not payload.ok", False),
        ("payload.level", False),
        ('payload.value > 80 and payload.unit == "C"', True),
        ('payload.value > 90 or payload.unit == "C"', True),
        ('payload.value > 90 or payload.unit == "F"', False),
        ('not (payload.value > 90 or payload.unit == "F")', True),
        ('event_type == "sensor.reading" and aggregate_id == "dev-1"', True),
        ('metadata.source == "http"', True),
        ('payload.level > "b"', True),
        ("-1 < payload.value", True),
        ("1e2 > payload.value", True),
        ('"a\\"b" == "a\\"b"', True),
    ],
)
def test_evaluates(condition: str, expected: bool) -> None:
    assert parse(condition).matches(EVENT) is expected


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("payload.value >", "expected a value or a path at position 16, found the end"),
        ("payload.value > > 3", "expected a value or a path at position 17, found '>'"),
        ("value > 80", "unknown name 'value' at position 1"),
        ("payload.value = 80", "unexpected character '=' at position 15"),
        ("(payload.value > 80", "expected ')' at position 20"),
        ("payload.value > 80)", "expected 'and', 'or' or the end of the condition at position 19"),
        ("payload. > 1", "expected a field name after '.'"),
        ("1 < payload.value < 3", "comparisons cannot be chained"),
        ("payload.value > 1 and", "expected a value or a path"),
        ('payload.x == "unterminated', "unexpected character '\"'"),
        ('payload.x == "bad \\q"', "unknown escape \\q"),
        ("__import__('os')", "unknown name '__import__'"),
        ("(" * 40 + "true" + ")" * 40, "nests deeper than 32"),
        ("true and " * 200 + "true", "longer than 1000 characters"),
    ],
)
def test_rejects_with_position(condition: str, message: str) -> None:
    with pytest.raises(ConditionError) as err:
        parse(condition)
    assert message in str(err.value)


@pytest.mark.parametrize("field", ["subject", "user", "tenant"])
def test_a_metadata_field_the_bus_does_not_carry_is_refused_where_it_is(field: str) -> None:
    """Review finding (issue 19): the bus envelope carries metadata.trace_id, source,
    schema_version and span_id, not the sender's subject; a rule on metadata.subject was
    accepted and then never matched in the orchestrator, with nothing telling the user."""
    with pytest.raises(ConditionError) as e:
        parse(f"payload.value > 1 and metadata.{field} == 'x'")
    assert f"metadata.{field}" in str(e.value)
    assert "position 23" in str(e.value)
    assert "trace_id, source, schema_version, span_id" in str(e.value)


@pytest.mark.parametrize("field", ["trace_id", "source", "schema_version", "span_id"])
def test_the_metadata_the_bus_carries_can_be_used(field: str) -> None:
    parse(f"metadata.{field} != 'x'")


def test_the_metadata_fields_are_the_bus_envelopes() -> None:
    from cornjacket.v1 import events_pb2

    from services.actions.conditions import METADATA_FIELDS

    assert set(METADATA_FIELDS) == {f.name for f in events_pb2.EventMetadata.DESCRIPTOR.fields}
