"""gRPC transport for the query service."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import grpc
from cornjacket.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    lineage_pb2,
    lineage_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
    watch_pb2,
    watch_pb2_grpc,
)

from services.core.errors import InvalidInput, Unavailable
from services.infra.codec import event_to_proto, to_struct, to_timestamp
from services.infra.grpc_errors import grpc_errors, metadata_value
from services.query import watch
from services.query.audit import AuditLog, AuditView
from services.query.lineage import LineageService
from services.query.service import ProjectionView, QueryService


def to_proto(v: ProjectionView) -> query_pb2.Projection:
    return query_pb2.Projection(
        projection_id=v.projection_id,
        projection_type=v.projection_type,
        aggregate_id=v.aggregate_id,
        state=to_struct(v.state),
        last_event_id=v.last_event_id,
        last_event_timestamp=to_timestamp(v.last_event_timestamp),
        updated_at=to_timestamp(v.updated_at),
    )


class QueryServicer(query_pb2_grpc.QueryServiceServicer):
    def __init__(self, service: QueryService) -> None:
        self._service = service

    @grpc_errors
    async def GetProjection(
        self, request: query_pb2.GetProjectionRequest, context: grpc.aio.ServicerContext
    ) -> query_pb2.Projection:
        return to_proto(await self._service.get(request.projection_type, request.aggregate_id))

    @grpc_errors
    async def ListProjections(
        self, request: query_pb2.ListProjectionsRequest, context: grpc.aio.ServicerContext
    ) -> query_pb2.ListProjectionsResponse:
        limit = request.limit if request.HasField("limit") else None
        page = await self._service.list(request.projection_type, limit, request.offset)
        return query_pb2.ListProjectionsResponse(
            projections=[to_proto(v) for v in page.items],
            total=page.total,
            limit=page.limit,
            offset=page.offset,
        )


class LineageServicer(lineage_pb2_grpc.LineageServiceServicer):
    def __init__(self, service: LineageService) -> None:
        self._service = service

    @grpc_errors
    async def GetEventLineage(
        self, request: lineage_pb2.GetEventLineageRequest, context: grpc.aio.ServicerContext
    ) -> lineage_pb2.EventLineage:
        event, hops = await self._service.lineage(request.event_id)
        out = lineage_pb2.EventLineage(event_id=event.event_id, event=event_to_proto(event))
        for h in hops:
            hop = out.hops.add(stage=h.stage, status=h.status, detail=h.detail)
            if h.at is not None:
                hop.at.CopyFrom(to_timestamp(h.at))
        return out


def audit_to_proto(v: AuditView) -> audit_pb2.AuditRecord:
    return audit_pb2.AuditRecord(
        audit_id=f"{v.owner}:{v.seq}",
        owner=v.owner,
        at=to_timestamp(v.at),
        subject=v.subject,
        request_id=v.request_id,
        action=v.action,
        target=v.target,
        change=to_struct(v.change),
        outcome=v.outcome,
        error=v.error,
    )


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    def __init__(self, log: AuditLog) -> None:
        self._log = log

    @grpc_errors
    async def ListAuditRecords(
        self, request: audit_pb2.ListAuditRecordsRequest, context: grpc.aio.ServicerContext
    ) -> audit_pb2.ListAuditRecordsResponse:
        size = request.page_size if request.HasField("page_size") else None
        page, token = await self._log.page(
            request.from_time, request.to_time, size, request.page_token
        )
        return audit_pb2.ListAuditRecordsResponse(
            records=[audit_to_proto(v) for v in page], next_page_token=token
        )


# --- live streams (issue 19) -------------------------------------------------------------
_END_REASONS = {
    "too_slow": watch_pb2.WATCH_END_REASON_TOO_SLOW,
    "shutdown": watch_pb2.WATCH_END_REASON_SHUTDOWN,
    "max_duration": watch_pb2.WATCH_END_REASON_MAX_DURATION,
}


def watch_item_to_proto(item: watch.Item) -> watch_pb2.WatchEventsResponse:
    if isinstance(item, watch.ProjectionItem):  # not an item of this stream
        raise TypeError("a projection on an event stream")
    if isinstance(item, watch.EventItem):
        return watch_pb2.WatchEventsResponse(
            event=event_to_proto(item.event), position=item.position
        )
    if isinstance(item, watch.Heartbeat):
        return watch_pb2.WatchEventsResponse(
            heartbeat=watch_pb2.WatchHeartbeat(), position=item.position
        )
    return watch_pb2.WatchEventsResponse(
        end=watch_pb2.WatchEnd(reason=_END_REASONS[item.reason], message=item.message),
        position=item.position,
    )


def projection_item_to_proto(item: watch.Item) -> watch_pb2.WatchProjectionResponse:
    if isinstance(item, watch.ProjectionItem):
        return watch_pb2.WatchProjectionResponse(
            projection=to_proto(item.view), position=item.position
        )
    if isinstance(item, watch.EventItem):  # not an item of this stream
        raise TypeError("an event on a projection stream")
    if isinstance(item, watch.Heartbeat):
        return watch_pb2.WatchProjectionResponse(
            heartbeat=watch_pb2.WatchHeartbeat(), position=item.position
        )
    return watch_pb2.WatchProjectionResponse(
        end=watch_pb2.WatchEnd(reason=_END_REASONS[item.reason], message=item.message),
        position=item.position,
    )


def _subject(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """Whose stream: the verified token's sub, which Envoy's jwt_authn sets as x-cj-subject
    (overwriting a client's own) on every authenticated route; "" without edge auth."""
    return metadata_value(context, "x-cj-subject")[:256]


class WatchServicer(watch_pb2_grpc.WatchServiceServicer):
    """Server streams: errors before the first message become the call's status (HTTP: 400,
    429, 412/400, 503 through the edge); a stream the server ends carries a WatchEnd."""

    def __init__(self, hub: watch.WatchHub, stop: asyncio.Event) -> None:
        self._hub = hub
        self._stop = stop

    async def WatchEvents(
        self,
        request: watch_pb2.WatchEventsRequest,
        context: grpc.aio.ServicerContext[
            watch_pb2.WatchEventsRequest, watch_pb2.WatchEventsResponse
        ],
    ) -> None:
        async def send(item: watch.Item) -> None:
            await context.write(watch_item_to_proto(item))

        flt = watch.Filter(request.event_type_prefix, request.aggregate_id)
        await self._streamed(
            context,
            self._hub.watch(flt, request.position, send, self._stop, _subject(context)),
        )

    @staticmethod
    async def _streamed(context: grpc.aio.ServicerContext[Any, Any], run: Awaitable[None]) -> None:
        """Run a stream; its errors before or instead of a WatchEnd become the status."""
        try:
            await run
        except InvalidInput as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except watch.WatchersExhausted as e:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))
        except watch.PositionExpired as e:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
        except watch.TooSlow as e:
            await context.abort(grpc.StatusCode.ABORTED, f"{e} (position {e.position})")
        except Unavailable as e:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, f"service temporarily unavailable: {e}"
            )

    async def WatchProjection(
        self,
        request: watch_pb2.WatchProjectionRequest,
        context: grpc.aio.ServicerContext[
            watch_pb2.WatchProjectionRequest, watch_pb2.WatchProjectionResponse
        ],
    ) -> None:
        async def send(item: watch.Item) -> None:
            await context.write(projection_item_to_proto(item))

        await self._streamed(
            context,
            self._hub.watch_projection(
                request.projection_type,
                request.aggregate_id,
                request.position,
                send,
                self._stop,
                _subject(context),
            ),
        )
