"""Request building shared by ``Client`` and ``AsyncClient``: each typed call turns its
keyword arguments into its Protobuf request here, once, so the sync and the asyncio client
differ only in how they send it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from cornjacket.v1 import actions_pb2, audit_pb2, dlq_pb2, ingestion_pb2, series_pb2
from google.protobuf import json_format, struct_pb2


def _text_time(value: str | datetime) -> str:
    return value if isinstance(value, str) else value.isoformat()


def keyed(request: ingestion_pb2.IngestEventRequest) -> ingestion_pb2.IngestEventRequest:
    """The request with an idempotency key: its own, or a new random one. The channel re-sends
    an ingest after UNAVAILABLE, which through Envoy can follow a commit (a route timeout, a
    reset after the request went out); with a key the second one is a "duplicate", not a
    second event."""
    if request.idempotency_key:
        return request
    copy = ingestion_pb2.IngestEventRequest()
    copy.CopyFrom(request)
    copy.idempotency_key = str(uuid.uuid4())
    return copy


def keyed_batch(
    requests: Sequence[ingestion_pb2.IngestEventRequest],
) -> ingestion_pb2.IngestEventsRequest:
    return ingestion_pb2.IngestEventsRequest(events=[keyed(r) for r in requests])


def series_request(
    device: str,
    metric: str,
    start: Any,
    end: Any,
    bucket: str,
    aggregates: Sequence[str] = (),
) -> series_pb2.GetSeriesRequest:
    """``start``/``end``: RFC 3339 text or timezone-aware datetimes; ``aggregates``: the
    columns wanted (count, sum, min, max, avg, first, last; none: all)."""
    return series_pb2.GetSeriesRequest(
        device=device,
        metric=metric,
        start=_text_time(start),
        end=_text_time(end),
        bucket=bucket,
        aggregates=list(aggregates),
    )


def audit_request(
    since: str, until: str, page_size: int, page_token: str
) -> audit_pb2.ListAuditRecordsRequest:
    return audit_pb2.ListAuditRecordsRequest(
        from_time=since, to_time=until, page_size=page_size, page_token=page_token
    )


# --- rules ---------------------------------------------------------------------------------
def _struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    result = struct_pb2.Struct()
    json_format.ParseDict(dict(value), result)
    return result


def target(
    url: str, headers: Mapping[str, Any] | None = None, secrets: Sequence[str] = ()
) -> actions_pb2.WebhookTarget:
    t = actions_pb2.WebhookTarget(url=url, secrets=list(secrets))
    if headers is not None:
        t.headers.CopyFrom(_struct(headers))
    return t


def create_rule(
    name: str,
    event_type_pattern: str,
    url: str,
    condition: str,
    headers: Mapping[str, Any] | None,
    secrets: Sequence[str],
    enabled: bool,
) -> actions_pb2.CreateRuleRequest:
    return actions_pb2.CreateRuleRequest(
        name=name,
        event_type_pattern=event_type_pattern,
        condition=condition,
        target=target(url, headers, secrets),
        enabled=enabled,
    )


def update_rule(
    rule_id: str,
    name: str | None,
    event_type_pattern: str | None,
    condition: str | None,
    url: str | None,
    headers: Mapping[str, Any] | None,
    secrets: Sequence[str],
) -> actions_pb2.UpdateRuleRequest:
    """Only the fields given change; a new target needs ``url`` (empty ``secrets`` keep the
    current ones)."""
    request = actions_pb2.UpdateRuleRequest(
        rule_id=rule_id, name=name, event_type_pattern=event_type_pattern, condition=condition
    )
    if url is not None:
        request.target.CopyFrom(target(url, headers, secrets))
    elif headers is not None or secrets:
        raise ValueError("a new target needs its url (headers and secrets replace the target)")
    return request


def list_rules(limit: int | None, offset: int) -> actions_pb2.ListRulesRequest:
    return actions_pb2.ListRulesRequest(limit=limit, offset=offset)


def rule_test(
    event_type: str,
    aggregate_id: str,
    payload: Mapping[str, Any] | None,
    rule_id: str,
    event_type_pattern: str,
    condition: str,
    source: str,
) -> actions_pb2.TestRuleRequest:
    sample = actions_pb2.SampleEvent(
        event_type=event_type,
        aggregate_id=aggregate_id,
        metadata=actions_pb2.SampleEventMetadata(source=source),
    )
    if payload is not None:
        sample.payload.CopyFrom(_struct(payload))
    return actions_pb2.TestRuleRequest(
        rule_id=rule_id,
        event_type_pattern=event_type_pattern,
        condition=condition,
        event=sample,
    )


# --- deliveries ----------------------------------------------------------------------------
def list_deliveries(
    rule_id: str,
    status: str,
    since: str | datetime,
    until: str | datetime,
    event_id: str,
    limit: int | None,
    offset: int,
) -> actions_pb2.ListDeliveriesRequest:
    return actions_pb2.ListDeliveriesRequest(
        rule_id=rule_id,
        status=status,
        since=_text_time(since),
        until=_text_time(until),
        event_id=event_id,
        limit=limit,
        offset=offset,
    )


def replay_deliveries(
    delivery_ids: Sequence[str], all_failed: bool, rule_id: str
) -> actions_pb2.ReplayDeliveriesRequest:
    if not delivery_ids and not all_failed:
        raise ValueError("name the delivery_ids to replay, or pass all_failed=True")
    return actions_pb2.ReplayDeliveriesRequest(
        delivery_ids=list(delivery_ids), all_failed=all_failed, rule_id=rule_id
    )


# --- dead letters --------------------------------------------------------------------------
def dead_letter_filter(
    status: str,
    consumer: str,
    failed_since: datetime | None = None,
    failed_until: datetime | None = None,
) -> dlq_pb2.DeadLetterFilter:
    flt = dlq_pb2.DeadLetterFilter(status=status, consumer=consumer)
    for field, value in (("failed_since", failed_since), ("failed_until", failed_until)):
        if value is not None:
            if value.tzinfo is None:
                raise ValueError(f"{field} must be timezone-aware, e.g. datetime.now(UTC)")
            getattr(flt, field).FromDatetime(value)
    return flt


def list_dead_letters(
    status: str, consumer: str, limit: int | None, offset: int
) -> dlq_pb2.ListDeadLettersRequest:
    return dlq_pb2.ListDeadLettersRequest(
        filter=dead_letter_filter(status, consumer), limit=limit, offset=offset
    )


def replay_dead_letters(
    dlq_ids: Sequence[str],
    consumer: str,
    failed_since: datetime | None,
    failed_until: datetime | None,
    limit: int | None,
) -> dlq_pb2.ReplayDeadLettersRequest:
    """Named ids, or (without ids) the pending dead letters the filter selects."""
    return dlq_pb2.ReplayDeadLettersRequest(
        dlq_ids=list(dlq_ids),
        filter=dead_letter_filter("", consumer, failed_since, failed_until),
        limit=limit,
    )
