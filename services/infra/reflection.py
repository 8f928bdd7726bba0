"""gRPC server reflection of the API's public services (issue 19, ADR 22).

One process (query) serves it for the whole API, so `grpcurl list` through the edge names
every public service: the generated modules put every descriptor into this process's pool,
whichever service answers the calls. Both protocol versions are served: grpcurl asks
grpc.reflection.v1 first, older clients v1alpha; the two are the same messages under two
package names (identical field numbers), so v1 is v1alpha's servicer under v1's path.
"""

from __future__ import annotations

import grpc
from cornjacket.v1 import (
    actions_pb2,
    audit_pb2,
    dlq_pb2,
    inference_pb2,
    ingestion_pb2,
    lineage_pb2,
    query_pb2,
    series_pb2,
    stats_pb2,
    watch_pb2,
)
from grpc_reflection.v1alpha import reflection, reflection_pb2

# What the edge routes (services/cli/envoy_config.py ROUTES). The internal services
# (EventRecordService, EventEffectsService, AuditLogService, IngestStatsService) are not
# listed: the edge refuses them. They share proto files with public ones, so a file's
# descriptor still shows them.
PUBLIC_SERVICES: tuple[str, ...] = tuple(
    module.DESCRIPTOR.services_by_name[name].full_name
    for module, name in (
        (ingestion_pb2, "IngestionService"),
        (query_pb2, "QueryService"),
        (lineage_pb2, "LineageService"),
        (stats_pb2, "StatsService"),
        (audit_pb2, "AuditService"),
        (watch_pb2, "WatchService"),
        (dlq_pb2, "DeadLetterService"),
        (actions_pb2, "ActionService"),
        (series_pb2, "SeriesService"),
        (inference_pb2, "InferenceService"),
    )
)

REFLECTION_SERVICES = (
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
)


def add_reflection(server: grpc.aio.Server) -> None:
    """Serve reflection (v1alpha and v1) of PUBLIC_SERVICES on ``server``."""
    servicer = reflection.aio.ReflectionServicer(PUBLIC_SERVICES)
    handlers = {
        "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
        )
    }
    server.add_generic_rpc_handlers(
        tuple(grpc.method_handlers_generic_handler(name, handlers) for name in REFLECTION_SERVICES)
    )
