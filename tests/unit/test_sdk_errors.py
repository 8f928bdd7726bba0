"""The Python SDK's exceptions (issue 19): gRPC errors become the SDK's own classes, still
grpc.RpcError; a rate limit carries the edge's retry delay."""

from __future__ import annotations

import grpc
import pytest
from cornjacket_sdk import errors

pytestmark = pytest.mark.unit


class FakeRpcError(grpc.RpcError):
    def __init__(
        self, code: grpc.StatusCode, details: str, trailing: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self._code, self._details, self._trailing = code, details, trailing

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return tuple(self._trailing)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (grpc.StatusCode.NOT_FOUND, errors.NotFound),
        (grpc.StatusCode.INVALID_ARGUMENT, errors.InvalidArgument),
        (grpc.StatusCode.UNAUTHENTICATED, errors.Unauthenticated),
        (grpc.StatusCode.PERMISSION_DENIED, errors.PermissionDenied),
        (grpc.StatusCode.UNAVAILABLE, errors.Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, errors.Unavailable),
        (grpc.StatusCode.FAILED_PRECONDITION, errors.FailedPrecondition),
        (grpc.StatusCode.INTERNAL, errors.Internal),
    ],
)
def test_codes_become_the_sdks_exceptions(code: grpc.StatusCode, kind: type) -> None:
    err = errors.from_rpc_error(FakeRpcError(code, "the service's words"))
    assert type(err) is kind and isinstance(err, grpc.RpcError)
    assert err.code() == code and err.details() == "the service's words"


def test_a_rate_limit_carries_the_retry_delay() -> None:
    limited = errors.from_rpc_error(
        FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down", (("retry-after", "2"),))
    )
    assert isinstance(limited, errors.RateLimited) and limited.retry_after == 2.0
    unknown = errors.from_rpc_error(FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "full"))
    assert isinstance(unknown, errors.RateLimited) and unknown.retry_after is None


def test_mapped_calls_raise_the_sdks_exceptions() -> None:
    @errors.mapped
    def call() -> None:
        raise FakeRpcError(grpc.StatusCode.NOT_FOUND, "no such projection")

    with pytest.raises(errors.NotFound, match="no such projection"):
        call()


class _WithMeta(FakeRpcError):
    def initial_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("x-request-id", "abc-123"),)


def test_an_error_keeps_the_calls_metadata_and_rich_status() -> None:
    from google.rpc import code_pb2, status_pb2
    from grpc_status import rpc_status

    rich = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="bad field")
    raw = _WithMeta(
        grpc.StatusCode.INVALID_ARGUMENT,
        "bad field",
        (("grpc-status-details-bin", rich.SerializeToString()),),
    )
    err = errors.from_rpc_error(raw)
    assert err.initial_metadata() == (("x-request-id", "abc-123"),)
    assert err.request_id == "abc-123"
    assert err.call is raw
    assert rpc_status.from_call(err) == rich


def test_a_mapped_call_chains_the_grpc_error() -> None:
    raw = FakeRpcError(grpc.StatusCode.NOT_FOUND, "no such projection")

    @errors.mapped
    def call() -> None:
        raise raw

    with pytest.raises(errors.NotFound) as caught:
        call()
    assert caught.value.__cause__ is raw


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (grpc.StatusCode.UNIMPLEMENTED, "Unimplemented"),
        (grpc.StatusCode.CANCELLED, "Cancelled"),
    ],
)
def test_unimplemented_and_cancelled_are_not_internal(code: grpc.StatusCode, kind: str) -> None:
    err = errors.from_rpc_error(FakeRpcError(code, "words"))
    assert type(err).__name__ == kind and not isinstance(err, errors.Internal)
