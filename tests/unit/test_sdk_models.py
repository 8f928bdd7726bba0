"""The Python SDK answers plain values (issue 19): dataclasses with datetimes, dicts and lists,
not Protobuf messages."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from cornjacket.v1 import audit_pb2, query_pb2, series_pb2
from cornjacket_sdk.models import Projection, plain

pytestmark = pytest.mark.unit

T = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_a_projection_is_a_dataclass_with_a_dict_state_and_datetimes() -> None:
    p = query_pb2.Projection(projection_type="sensor_state", aggregate_id="d1")
    p.state.update({"value": 21.5, "unit": "C"})
    p.last_event_timestamp.FromDatetime(T)
    got = Projection.from_proto(p)
    assert got.state == {"value": 21.5, "unit": "C"}
    assert got.last_event_timestamp == T and got.updated_at is None
    assert dataclasses.is_dataclass(got)


def test_any_answer_becomes_plain_values_with_the_same_names() -> None:
    r = audit_pb2.ListAuditRecordsResponse(next_page_token="next")
    rec = r.records.add(audit_id="actions:1", target="rule-1", outcome="OK")
    rec.at.FromDatetime(T)
    rec.change.update({"name": "x"})
    page = plain(r)
    assert dataclasses.is_dataclass(page) and page.next_page_token == "next"
    (got,) = page.records
    assert (got.target, got.outcome, got.at, got.change) == ("rule-1", "OK", T, {"name": "x"})
    series = plain(series_pb2.GetSeriesResponse(device="d", count=[1, 2], sum=[1.0, 4.0]))
    assert series.count == [1, 2] and series.sum == [1.0, 4.0] and series.origin is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        series.device = "other"
