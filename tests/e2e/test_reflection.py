"""gRPC server reflection at the edge (issue 19, ADR 22): what `grpcurl list`, `describe`
and a call with `-d` do, done with grpcio's reflection client through Envoy's port.

The calls use only descriptors the edge reflected: a descriptor pool of its own, fed by the
reflection stream, and dynamic message classes built from it (never the generated stubs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from services.cli.stack import Stack
from tests.support import eventually, token, unique

pytestmark = pytest.mark.e2e

Log = list[tuple[str, str, str, bool]]

# The API's public services: every one the edge routes (and transcodes).
PUBLIC = {
    "cornjacket.v1.IngestionService",
    "cornjacket.v1.QueryService",
    "cornjacket.v1.LineageService",
    "cornjacket.v1.StatsService",
    "cornjacket.v1.AuditService",
    "cornjacket.v1.WatchService",
    "cornjacket.v1.DeadLetterService",
    "cornjacket.v1.ActionService",
    "cornjacket.v1.SeriesService",
    "cornjacket.v1.InferenceService",
}
V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
V1ALPHA = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


class _Bearer(
    grpc.UnaryUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """The token on every call, the reflection stream included (grpcurl's -H)."""

    def __init__(self, token: str) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),)

    def _details(self, details: Any) -> Any:
        return details._replace(metadata=tuple(details.metadata or ()) + self._metadata)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


def _channel(stack: Stack, bearer: str | None) -> grpc.Channel:
    ch = grpc.insecure_channel(f"127.0.0.1:{stack.settings.edge_port}")
    return grpc.intercept_channel(ch, _Bearer(bearer)) if bearer else ch


@pytest.fixture
def admin(stack: Stack) -> Iterator[grpc.Channel]:
    ch = _channel(stack, token(stack))
    yield ch
    ch.close()


def _list(channel: grpc.Channel, path: str = V1ALPHA) -> set[str]:
    """`grpcurl list`: one list_services request on the reflection stream."""
    call = channel.stream_stream(
        path,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    answers = list(
        call(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
    )
    assert len(answers) == 1, answers
    return {s.name for s in answers[0].list_services_response.service}


def _unary(
    channel: grpc.Channel, pool: descriptor_pool.DescriptorPool, method: str
) -> tuple[Callable[..., Any], type[Any]]:
    """A callable for ``Service.Method`` and its request class, built from reflected
    descriptors only (what grpcurl does with -d)."""
    service, name = method.rsplit(".", 1)
    m = pool.FindServiceByName(service).methods_by_name[name]  # (loads the service's file)
    request = message_factory.GetMessageClass(m.input_type)
    response = message_factory.GetMessageClass(m.output_type)
    call = channel.unary_unary(
        f"/{m.containing_service.full_name}/{m.name}",
        request_serializer=request.SerializeToString,
        response_deserializer=response.FromString,
    )
    return call, request


def test_list_names_every_public_service_and_nothing_internal(admin: grpc.Channel) -> None:
    assert _list(admin) == PUBLIC
    db = ProtoReflectionDescriptorDatabase(admin)
    assert set(db.get_services()) == PUBLIC


def test_v1_reflection_answers_too(admin: grpc.Channel) -> None:
    # grpcurl asks grpc.reflection.v1 first; the wire format is v1alpha's.
    assert _list(admin, V1) == PUBLIC


def test_describe_every_public_service(admin: grpc.Channel) -> None:
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(admin))
    for name in PUBLIC:
        assert pool.FindServiceByName(name).methods, name
    m = pool.FindServiceByName("cornjacket.v1.QueryService").methods_by_name["GetProjection"]
    assert m.input_type.full_name == "cornjacket.v1.GetProjectionRequest"
    assert m.output_type.full_name == "cornjacket.v1.Projection"
    assert [f.name for f in m.input_type.fields] == ["projection_type", "aggregate_id"]
    watch = pool.FindServiceByName("cornjacket.v1.WatchService").methods_by_name["WatchEvents"]
    assert watch.server_streaming and not watch.client_streaming


def test_calls_with_reflected_descriptors_only(admin: grpc.Channel) -> None:
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(admin))
    ingest, IngestRequest = _unary(admin, pool, "cornjacket.v1.IngestionService.IngestEvent")
    get, GetRequest = _unary(admin, pool, "cornjacket.v1.QueryService.GetProjection")
    agg = unique("reflect")
    request = json_format.ParseDict(
        {
            "event_type": "sensor.reading",
            "aggregate_id": agg,
            "payload": {"value": 7.5, "unit": "C"},
        },
        IngestRequest(),
    )
    accepted = json_format.MessageToDict(ingest(request, timeout=10))
    assert accepted["status"] == "accepted"

    def projection() -> dict[str, Any] | None:
        try:
            found = get(GetRequest(projection_type="sensor_state", aggregate_id=agg), timeout=5)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e
            return None
        return json_format.MessageToDict(found, preserving_proto_field_name=True)

    p = eventually(projection, what="the projection, read with reflected descriptors")
    assert p["last_event_id"] == accepted["eventId"] and p["state"] == {"value": 7.5, "unit": "C"}


def _code(fn: Callable[[], object]) -> grpc.StatusCode:
    try:
        fn()
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def test_reflection_attacks(stack: Stack, attack_log: Log) -> None:
    """Reflection is one bidi stream for list and describe alike: the edge cannot tell them
    apart, so both need a verified token (any scope); what it shows is no licence to call."""
    rows: list[tuple[str, str, grpc.StatusCode]] = []
    with _channel(stack, None) as anon:
        rows.append(("reflection list, no token", "UNAUTHENTICATED", _code(lambda: _list(anon))))
        rows.append(
            ("reflection v1 list, no token", "UNAUTHENTICATED", _code(lambda: _list(anon, V1)))
        )
    head, body, sig = token(stack, subject="forger").split(".")
    bad = ".".join((head, body, sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]))
    with _channel(stack, bad) as forged:
        rows.append(
            ("reflection list, forged token", "UNAUTHENTICATED", _code(lambda: _list(forged)))
        )
    writer = _channel(stack, token(stack, "events:write", subject="reflect-writer"))
    try:
        rows.append(("reflection list, events:write token", "OK", _code(lambda: _list(writer))))
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(writer))
        get, GetRequest = _unary(writer, pool, "cornjacket.v1.QueryService.GetProjection")
        rows.append(
            (
                "reflected QueryService call, events:write token",
                "PERMISSION_DENIED",
                _code(lambda: get(GetRequest(projection_type="sensor_state", aggregate_id="x"))),
            )
        )
        # Internal services share proto files with public ones (lineage.proto): describing
        # the file shows them, the edge still refuses them.
        call, Request = _unary(writer, pool, "cornjacket.v1.EventRecordService.GetEventRecord")
        rows.append(
            (
                "reflected internal EventRecordService call",
                "PERMISSION_DENIED",
                _code(lambda: call(Request(), timeout=10)),
            )
        )
    finally:
        writer.close()
    for attack, expected, got in rows:
        attack_log.append((attack, expected, got.name, got.name == expected))
    assert [(a, e) for a, e, _ in rows] == [(a, g.name) for a, _, g in rows]
