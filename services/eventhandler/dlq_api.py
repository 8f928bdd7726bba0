"""gRPC adapter for DeadLetterService (synchronous: it shares the handler's thread-pool server)."""

from __future__ import annotations

from datetime import UTC

import grpc
from cornjacket.v1 import dlq_pb2, dlq_pb2_grpc

from services.eventhandler.dead_letters import (
    DeadLetterFilter,
    DeadLetterService,
    DeadLetterView,
    Outcome,
)
from services.infra.audit import SyncAuditLog, caller_of
from services.infra.grpc_errors import grpc_errors_sync

_SERVICE = "/cornjacket.v1.DeadLetterService/"


def _filter(f: dlq_pb2.DeadLetterFilter) -> DeadLetterFilter:
    return DeadLetterFilter(
        consumer=f.consumer,
        status=f.status,
        failed_since=f.failed_since.ToDatetime(tzinfo=UTC) if f.HasField("failed_since") else None,
        failed_until=f.failed_until.ToDatetime(tzinfo=UTC) if f.HasField("failed_until") else None,
    )


def _message(v: DeadLetterView) -> dlq_pb2.DeadLetter:
    r = v.record
    msg = dlq_pb2.DeadLetter(
        dlq_id=r.dlq_id,
        consumer=r.consumer,
        event_id=r.event_id,
        event_type=v.event_type,
        aggregate_id=v.aggregate_id,
        error_message=r.error_message,
        retry_count=r.retry_count,
        status=r.status,
        size_bytes=len(r.raw),
    )
    msg.failed_at.FromDatetime(r.failed_at)
    return msg


def _outcomes(items: list[Outcome]) -> list[dlq_pb2.DeadLetterOutcome]:
    return [
        dlq_pb2.DeadLetterOutcome(dlq_id=o.dlq_id, status=o.status, error=o.error) for o in items
    ]


def _audited_filter(f: DeadLetterFilter | None) -> dict[str, str] | None:
    if f is None:
        return None
    return {
        "consumer": f.consumer,
        "status": f.status,
        "failed_since": f.failed_since.isoformat() if f.failed_since else "",
        "failed_until": f.failed_until.isoformat() if f.failed_until else "",
    }


def _audited_outcomes(items: list[Outcome]) -> list[dict[str, str]]:
    return [{"dlq_id": o.dlq_id, "status": o.status} for o in items]


class DeadLetterServicer(dlq_pb2_grpc.DeadLetterServiceServicer):
    def __init__(self, service: DeadLetterService, audit: SyncAuditLog) -> None:
        self._service = service
        self._audit = audit

    @grpc_errors_sync
    def ListDeadLetters(
        self, request: dlq_pb2.ListDeadLettersRequest, context: grpc.ServicerContext
    ) -> dlq_pb2.ListDeadLettersResponse:
        limit = request.limit if request.HasField("limit") else None
        views, total, used = self._service.page(_filter(request.filter), limit, request.offset)
        return dlq_pb2.ListDeadLettersResponse(
            dead_letters=[_message(v) for v in views],
            total=total,
            limit=used,
            offset=request.offset,
        )

    @grpc_errors_sync
    def GetDeadLetter(
        self, request: dlq_pb2.GetDeadLetterRequest, context: grpc.ServicerContext
    ) -> dlq_pb2.DeadLetter:
        return _message(self._service.get(request.dlq_id))

    @grpc_errors_sync
    def ReplayDeadLetters(
        self, request: dlq_pb2.ReplayDeadLettersRequest, context: grpc.ServicerContext
    ) -> dlq_pb2.ReplayDeadLettersResponse:
        limit = request.limit if request.HasField("limit") else None
        flt = _filter(request.filter) if request.HasField("filter") else None
        who = caller_of(context.invocation_metadata())
        with self._audit.record(who, _SERVICE + "ReplayDeadLetters") as audit:
            audit.change = {"dlq_ids": list(request.dlq_ids), "filter": _audited_filter(flt)}
            outcomes = self._service.replay(list(request.dlq_ids), flt, limit)
            audit.change["outcomes"] = _audited_outcomes(outcomes)
        return dlq_pb2.ReplayDeadLettersResponse(
            outcomes=_outcomes(outcomes),
            replayed=sum(o.status == "replayed" for o in outcomes),
            failed=sum(o.status == "failed" for o in outcomes),
        )

    @grpc_errors_sync
    def DiscardDeadLetters(
        self, request: dlq_pb2.DiscardDeadLettersRequest, context: grpc.ServicerContext
    ) -> dlq_pb2.DiscardDeadLettersResponse:
        who = caller_of(context.invocation_metadata())
        with self._audit.record(who, _SERVICE + "DiscardDeadLetters") as audit:
            audit.change = {"dlq_ids": list(request.dlq_ids)}
            outcomes = self._service.discard(list(request.dlq_ids))
            audit.change["outcomes"] = _audited_outcomes(outcomes)
        return dlq_pb2.DiscardDeadLettersResponse(
            outcomes=_outcomes(outcomes),
            discarded=sum(o.status == "discarded" for o in outcomes),
        )
