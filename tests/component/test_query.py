"""The query service as a real process over projections written by the handler's schema."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import psycopg
import pytest
from cornjacket.v1 import query_pb2, query_pb2_grpc
from psycopg.types.json import Jsonb

from services.cli.processes import free_port
from services.infra import migrations
from tests.support import service_process, unique

pytestmark = pytest.mark.component

T = datetime(2026, 2, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def seeded(database: str) -> str:
    migrations.apply(database, "eventhandler")
    ptype = "sensor_state"
    with psycopg.connect(database) as conn:
        for i in range(25):
            conn.execute(
                "INSERT INTO eventhandler.projections (projection_type, aggregate_id, state, "
                "last_event_id, last_event_timestamp, updated_at) VALUES (%s, %s, %s, %s, %s, %s)",
                (ptype, f"q-{i:02d}", Jsonb({"value": i}), uuid.uuid4(), T, T),
            )
    return ptype


@pytest.fixture(scope="module")
def query(
    database: str, seeded: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[query_pb2_grpc.QueryServiceStub]:
    port = free_port()
    env = {"CJ_QUERY_DATABASE_URL": database, "CJ_QUERY_PORT": str(port)}
    with service_process("query", env, tmp_path_factory.mktemp("q"), f"127.0.0.1:{port}"):
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        yield query_pb2_grpc.QueryServiceStub(channel)
        channel.close()


def test_get_projection(query: query_pb2_grpc.QueryServiceStub) -> None:
    p = query.GetProjection(
        query_pb2.GetProjectionRequest(projection_type="sensor_state", aggregate_id="q-03")
    )
    assert p.aggregate_id == "q-03" and dict(p.state) == {"value": 3.0}
    assert p.last_event_timestamp.ToDatetime(tzinfo=UTC) == T


def test_get_missing_is_not_found(query: query_pb2_grpc.QueryServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as err:
        query.GetProjection(
            query_pb2.GetProjectionRequest(projection_type="sensor_state", aggregate_id=unique("x"))
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_list_pages_with_total(query: query_pb2_grpc.QueryServiceStub) -> None:
    first = query.ListProjections(query_pb2.ListProjectionsRequest(projection_type="sensor_state"))
    assert (first.total, first.limit, first.offset, len(first.projections)) == (25, 20, 0, 20)
    last = query.ListProjections(
        query_pb2.ListProjectionsRequest(projection_type="sensor_state", limit=10, offset=20)
    )
    assert [p.aggregate_id for p in last.projections] == [f"q-{i}" for i in range(20, 25)]
    empty = query.ListProjections(query_pb2.ListProjectionsRequest(projection_type="user_session"))
    assert (empty.total, len(empty.projections)) == (0, 0)


@pytest.mark.parametrize(("limit", "offset"), [(0, 0), (101, 0), (10, -1)])
def test_bad_paging_is_invalid_argument(
    query: query_pb2_grpc.QueryServiceStub, limit: int, offset: int
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        query.ListProjections(
            query_pb2.ListProjectionsRequest(
                projection_type="sensor_state", limit=limit, offset=offset
            )
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
