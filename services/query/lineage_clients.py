"""gRPC adapters for the lineage ports (ingestion's EventRecordService, the event handler's
EventEffectsService, the orchestrator's deliveries) and the audit log's sources (each
owner's AuditLogService), called inside the mesh."""

from __future__ import annotations

from datetime import datetime

import grpc
from cornjacket.v1 import (
    actions_pb2,
    actions_pb2_grpc,
    audit_pb2,
    audit_pb2_grpc,
    inference_pb2,
    inference_pb2_grpc,
    lineage_pb2,
    lineage_pb2_grpc,
)

from services.core.errors import Unavailable
from services.core.events import Event
from services.infra.codec import event_from_proto, event_to_proto, from_struct, from_timestamp
from services.query.audit import AuditView
from services.query.lineage import (
    AnomalyView,
    DeadLetterView,
    EffectView,
    PublicationView,
    RecordView,
    WebhookView,
)

TIMEOUT = 5.0


class GrpcRecords:
    def __init__(self, address: str) -> None:
        self._address = address
        self._channel = grpc.aio.insecure_channel(address)
        self._stub = lineage_pb2_grpc.EventRecordServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def record(self, event_id: str) -> RecordView | None:
        try:
            r = await self._stub.GetEventRecord(
                lineage_pb2.GetEventRecordRequest(event_id=event_id), timeout=TIMEOUT
            )
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise Unavailable(
                f"ingestion at {self._address}: {e.code().name}: {e.details()}"
            ) from e
        return RecordView(
            event=event_from_proto(r.event),
            state=r.state,
            stored_at=from_timestamp(r.stored_at) if r.HasField("stored_at") else None,
            retry_count=r.outbox_retry_count,
            last_error=r.outbox_last_error,
            publications=[
                PublicationView(p.topic, p.partition, p.offset, from_timestamp(p.published_at))
                for p in r.publications
            ],
        )


class GrpcEffects:
    def __init__(self, address: str) -> None:
        self._address = address
        self._channel = grpc.aio.insecure_channel(address)
        self._stub = lineage_pb2_grpc.EventEffectsServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def effects(self, event: Event) -> tuple[list[EffectView], list[DeadLetterView]]:
        try:
            r = await self._stub.GetEventEffects(
                lineage_pb2.GetEventEffectsRequest(event=event_to_proto(event)), timeout=TIMEOUT
            )
        except grpc.aio.AioRpcError as e:
            raise Unavailable(
                f"event handler at {self._address}: {e.code().name}: {e.details()}"
            ) from e
        return (
            [
                EffectView(
                    p.projection_type,
                    p.aggregate_id,
                    p.status,
                    p.current_event_id,
                    from_timestamp(p.updated_at) if p.HasField("updated_at") else None,
                )
                for p in r.projections
            ],
            [
                DeadLetterView(
                    d.dlq_id, d.consumer, d.status, d.error_message, from_timestamp(d.failed_at)
                )
                for d in r.dead_letters
            ],
        )


class GrpcWebhooks:
    def __init__(self, address: str) -> None:
        self._address = address
        self._channel = grpc.aio.insecure_channel(address)
        self._stub = actions_pb2_grpc.ActionServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def deliveries(self, event_id: str) -> list[WebhookView]:
        try:
            r = await self._stub.ListDeliveries(
                actions_pb2.ListDeliveriesRequest(event_id=event_id, limit=100), timeout=TIMEOUT
            )
        except grpc.aio.AioRpcError as e:
            raise Unavailable(
                f"action orchestrator at {self._address}: {e.code().name}: {e.details()}"
            ) from e
        return [
            WebhookView(
                d.delivery_id,
                d.rule_id,
                d.target_url,
                d.status,
                d.attempt_count,
                d.last_error,
                from_timestamp(d.updated_at),
            )
            for d in r.deliveries
        ]


class GrpcAnomalies:
    """The inference service's GetEventAnomalies (issue 18)."""

    def __init__(self, address: str) -> None:
        self._address = address
        self._channel = grpc.aio.insecure_channel(address)
        self._stub = inference_pb2_grpc.InferenceServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def caused_by(self, event_id: str) -> list[AnomalyView]:
        try:
            r = await self._stub.GetEventAnomalies(
                inference_pb2.GetEventAnomaliesRequest(event_id=event_id), timeout=TIMEOUT
            )
        except grpc.aio.AioRpcError as e:
            raise Unavailable(
                f"inference at {self._address}: {e.code().name}: {e.details()}"
            ) from e
        return [
            AnomalyView(
                a.anomaly_event_id, a.metric, a.score, a.threshold, from_timestamp(a.event_time)
            )
            for a in r.anomalies
        ]


class GrpcAuditSource:
    """One owner's AuditLogService (the action orchestrator's or the event handler's)."""

    def __init__(self, owner: str, address: str) -> None:
        self.owner = owner
        self._address = address
        self._channel = grpc.aio.insecure_channel(address)
        self._stub = audit_pb2_grpc.AuditLogServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def records(
        self,
        since: datetime | None,
        until: datetime | None,
        after: tuple[datetime, int] | None,
        limit: int,
    ) -> list[AuditView]:
        req = audit_pb2.ListOwnAuditRecordsRequest(limit=limit)
        if since is not None:
            req.since.FromDatetime(since)
        if until is not None:
            req.until.FromDatetime(until)
        if after is not None:
            req.after_at.FromDatetime(after[0])
            req.after_seq = after[1]
        try:
            r = await self._stub.ListOwnAuditRecords(req, timeout=TIMEOUT)
        except grpc.aio.AioRpcError as e:
            raise Unavailable(
                f"{self.owner} at {self._address}: {e.code().name}: {e.details()}"
            ) from e
        return [
            AuditView(
                owner=a.owner,
                seq=int(a.audit_id.rpartition(":")[2]),
                at=from_timestamp(a.at),
                subject=a.subject,
                request_id=a.request_id,
                action=a.action,
                target=a.target,
                change=from_struct(a.change),
                outcome=a.outcome,
                error=a.error,
            )
            for a in r.records
        ]
