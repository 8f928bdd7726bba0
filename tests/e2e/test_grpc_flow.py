"""A native gRPC client talking to the services through Envoy's edge port."""

from __future__ import annotations

import grpc
import pytest
from cornjacket.v1 import ingestion_pb2, ingestion_pb2_grpc, query_pb2, query_pb2_grpc

from services.infra.codec import to_value
from tests.support import eventually, unique

pytestmark = pytest.mark.e2e


def test_grpc_ingest_and_query_through_envoy(channel: grpc.Channel) -> None:
    ingest = ingestion_pb2_grpc.IngestionServiceStub(channel)
    query = query_pb2_grpc.QueryServiceStub(channel)
    agg = unique("grpc")
    resp = ingest.IngestEvent(
        ingestion_pb2.IngestEventRequest(
            event_type="sensor.reading",
            aggregate_id=agg,
            payload=to_value({"value": 21.0, "unit": "C"}),
        ),
        timeout=10,
    )
    assert resp.status == "accepted"

    def get() -> query_pb2.Projection | None:
        try:
            found: query_pb2.Projection = query.GetProjection(
                query_pb2.GetProjectionRequest(projection_type="sensor_state", aggregate_id=agg),
                timeout=5,
            )
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND
            return None
        return found

    p = eventually(get, what="projection over gRPC")
    assert p.last_event_id == resp.event_id and dict(p.state) == {"value": 21.0, "unit": "C"}

    batch = ingest.IngestEvents(
        ingestion_pb2.IngestEventsRequest(
            events=[
                ingestion_pb2.IngestEventRequest(
                    event_type="sensor.reading",
                    aggregate_id=agg,
                    payload=to_value({"value": float(i), "unit": "C"}),
                    idempotency_key=f"{agg}-{i}",
                )
                for i in range(50)
            ]
        ),
        timeout=10,
    )
    assert batch.accepted == 50 and batch.rejected == 0


def test_grpc_errors_keep_their_codes(channel: grpc.Channel) -> None:
    ingest = ingestion_pb2_grpc.IngestionServiceStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        ingest.IngestEvent(
            ingestion_pb2.IngestEventRequest(event_type="x.y", aggregate_id=""), timeout=10
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == "aggregate_id is required"
    query = query_pb2_grpc.QueryServiceStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        query.ListProjections(
            query_pb2.ListProjectionsRequest(projection_type="sensor_state", limit=500)
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
