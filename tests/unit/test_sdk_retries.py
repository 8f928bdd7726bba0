"""Which calls the Python SDK re-sends after UNAVAILABLE. Through Envoy, UNAVAILABLE does not
mean nothing was done: a route timeout (504) and an upstream reset after the request was sent
(503) both reach the client as UNAVAILABLE while the service may have committed. A call that
is not safe to repeat (a new rule, a replay, a discard, a delete, a model reset) must not be
re-sent by the channel; reads and idempotent updates still are."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from cornjacket.v1 import actions_pb2, dlq_pb2, ingestion_pb2
from cornjacket_sdk import AsyncClient, Client, errors

pytestmark = pytest.mark.unit


class _Recorder(grpc.GenericRpcHandler):
    """Answers every unary call UNAVAILABLE (the answer lost after the work was done) and
    counts how many times each method arrived."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = details.method

        def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
            self.calls[method] = self.calls.get(method, 0) + 1
            context.abort(grpc.StatusCode.UNAVAILABLE, "upstream request timeout")
            return b""  # pragma: no cover

        return grpc.unary_unary_rpc_method_handler(handle)


@pytest.fixture
def server() -> Iterator[tuple[str, _Recorder]]:
    recorder = _Recorder()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[recorder])
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    try:
        yield f"127.0.0.1:{port}", recorder
    finally:
        srv.stop(None)


_ONCE = {
    "/cornjacket.v1.ActionService/CreateRule": lambda cj: cj.create_rule(
        "r", "sensor.*", "http://example.test/hook"
    ),
    "/cornjacket.v1.ActionService/DeleteRule": lambda cj: cj.delete_rule("r1"),
    "/cornjacket.v1.ActionService/ReplayDeliveries": lambda cj: cj.replay_deliveries(
        all_failed=True
    ),
    "/cornjacket.v1.ActionService/DiscardDelivery": lambda cj: cj.discard_delivery("d1"),
    "/cornjacket.v1.DeadLetterService/ReplayDeadLetters": lambda cj: cj.replay_dead_letters(
        consumer="event-handler"
    ),
    "/cornjacket.v1.DeadLetterService/DiscardDeadLetters": lambda cj: cj.discard_dead_letters(
        ["x"]
    ),
    "/cornjacket.v1.InferenceService/ResetModel": lambda cj: cj.reset_model("dev-1"),
}


@pytest.mark.parametrize("method", sorted(_ONCE))
def test_a_call_not_safe_to_repeat_is_sent_once(server: tuple[str, _Recorder], method: str) -> None:
    target, recorder = server
    with Client(target, timeout=5) as cj, pytest.raises(errors.Unavailable):
        _ONCE[method](cj)
    assert recorder.calls == {method: 1}


async def test_the_asyncio_client_sends_a_new_rule_once(server: tuple[str, _Recorder]) -> None:
    target, recorder = server
    cj = AsyncClient(target, timeout=5)
    try:
        with pytest.raises(errors.Unavailable):
            await cj.create_rule("r", "sensor.*", "http://example.test/hook")
    finally:
        await cj.close()
    assert recorder.calls == {"/cornjacket.v1.ActionService/CreateRule": 1}


def test_reads_and_idempotent_updates_are_still_retried(server: tuple[str, _Recorder]) -> None:
    target, recorder = server
    with Client(target, timeout=5) as cj:
        with pytest.raises(errors.Unavailable):
            cj.get_rule("r1")
        with pytest.raises(errors.Unavailable):
            cj.disable_rule("r1")
        with pytest.raises(grpc.RpcError):  # a raw stub: the gRPC error as it is
            cj.actions.ListRules(actions_pb2.ListRulesRequest(), **cj.call_options())
        with pytest.raises(grpc.RpcError):
            cj.dead_letters.GetDeadLetter(
                dlq_pb2.GetDeadLetterRequest(dlq_id="x"), **cj.call_options()
            )
    assert recorder.calls == {
        "/cornjacket.v1.ActionService/GetRule": 4,
        "/cornjacket.v1.ActionService/DisableRule": 4,
        "/cornjacket.v1.ActionService/ListRules": 4,
        "/cornjacket.v1.DeadLetterService/GetDeadLetter": 4,
    }


class _IngestRecorder(grpc.GenericRpcHandler):
    """Answers ingest UNAVAILABLE and keeps every request that arrived."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
            self.requests.append(request)
            context.abort(grpc.StatusCode.UNAVAILABLE, "upstream request timeout")
            return b""  # pragma: no cover

        return grpc.unary_unary_rpc_method_handler(handle)


def test_an_ingest_without_a_key_is_re_sent_with_one_key_so_it_cannot_be_stored_twice() -> None:
    """Ingest is retried after UNAVAILABLE (the answer may be lost after the commit): every
    attempt must carry the same idempotency key, so ingestion answers the second "duplicate".
    A key the caller gave is kept."""
    recorder = _IngestRecorder()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[recorder])
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    try:
        with Client(f"127.0.0.1:{port}", timeout=5) as cj:
            with pytest.raises(errors.Unavailable):
                cj.ingest(ingestion_pb2.IngestEventRequest(event_type="t", aggregate_id="a"))
            sent = [ingestion_pb2.IngestEventRequest.FromString(r) for r in recorder.requests]
            assert len(sent) == 4
            assert len({r.idempotency_key for r in sent}) == 1 and sent[0].idempotency_key
            recorder.requests.clear()
            with pytest.raises(errors.Unavailable):
                cj.ingest_many(
                    [
                        ingestion_pb2.IngestEventRequest(event_type="t", aggregate_id="a"),
                        ingestion_pb2.IngestEventRequest(
                            event_type="t", aggregate_id="b", idempotency_key="mine"
                        ),
                    ]
                )
            batches = [ingestion_pb2.IngestEventsRequest.FromString(r) for r in recorder.requests]
            assert len(batches) == 4
            keys = {tuple(e.idempotency_key for e in b.events) for b in batches}
            assert len(keys) == 1
            (first, mine), *_ = keys
            assert first and mine == "mine"
    finally:
        srv.stop(None)
