"""gRPC adapter for EventEffectsService (synchronous, on the handler's thread-pool server)."""

from __future__ import annotations

import grpc
from cornjacket.v1 import lineage_pb2, lineage_pb2_grpc

from services.core.errors import InvalidInput
from services.eventhandler.effects import EffectsStore, effects
from services.eventhandler.projectors import Registry
from services.infra.codec import event_from_proto, to_timestamp
from services.infra.grpc_errors import grpc_errors_sync


class EventEffectsServicer(lineage_pb2_grpc.EventEffectsServiceServicer):
    def __init__(self, registry: Registry, store: EffectsStore) -> None:
        self._registry = registry
        self._store = store

    @grpc_errors_sync
    def GetEventEffects(
        self, request: lineage_pb2.GetEventEffectsRequest, context: grpc.ServicerContext
    ) -> lineage_pb2.EventEffects:
        if not request.event.event_id:
            raise InvalidInput("event is required")
        projections, dead = effects(event_from_proto(request.event), self._registry, self._store)
        out = lineage_pb2.EventEffects()
        for p in projections:
            msg = out.projections.add(
                projection_type=p.projection_type,
                aggregate_id=p.aggregate_id,
                status=p.status,
                current_event_id=p.current_event_id,
            )
            if p.updated_at is not None:
                msg.updated_at.CopyFrom(to_timestamp(p.updated_at))
        for d in dead:
            out.dead_letters.add(
                dlq_id=d.dlq_id,
                consumer=d.consumer,
                status=d.status,
                error_message=d.error_message,
                failed_at=to_timestamp(d.failed_at),
            )
        return out
