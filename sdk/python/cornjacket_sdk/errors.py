"""The SDK's exceptions: what a failed call means, not how gRPC spells it.

Every typed call of ``Client``/``AsyncClient`` raises one of these instead of grpc's
``_InactiveRpcError``. They still are ``grpc.RpcError`` with ``code()``, ``details()``,
``initial_metadata()`` and ``trailing_metadata()`` (so ``grpc_status.rpc_status.from_call``
works on them), the original error as ``call`` and ``__cause__``, and ``request_id`` (the
edge's ``x-request-id``): code written against the raw errors keeps working.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import grpc

Metadata = tuple[tuple[str, str | bytes], ...]


class CornjacketError(grpc.RpcError):  # type: ignore[misc]  # grpc is untyped
    """A call failed. ``status`` is the gRPC status code; ``message`` the service's words."""

    def __init__(
        self, status: grpc.StatusCode, message: str, call: grpc.RpcError | None = None
    ) -> None:
        super().__init__(f"{status.name}: {message}")
        self.status = status
        self.message = message
        self.call = call  # the gRPC error this one stands for, if any
        self._initial = _pairs(call, "initial_metadata")
        self._trailing = _pairs(call, "trailing_metadata")

    def code(self) -> grpc.StatusCode:
        return self.status

    def details(self) -> str:
        return self.message

    def initial_metadata(self) -> Metadata:
        return self._initial

    def trailing_metadata(self) -> Metadata:
        return self._trailing

    @property
    def request_id(self) -> str | None:
        """The edge's x-request-id of the failed call (quote it when reporting a problem)."""
        return _find(self._initial + self._trailing, "x-request-id")


class InvalidArgument(CornjacketError):
    """The request was refused as it is (HTTP 400); do not retry it unchanged."""


class NotFound(CornjacketError):
    """Nothing by that id (HTTP 404)."""


class AlreadyExists(CornjacketError):
    """It exists already (HTTP 409)."""


class FailedPrecondition(CornjacketError):
    """Not in a state that allows this (e.g. a stream position the bus no longer keeps)."""


class Unauthenticated(CornjacketError):
    """No valid token (HTTP 401)."""


class PermissionDenied(CornjacketError):
    """The token's scopes do not allow this (HTTP 403)."""


class RateLimited(CornjacketError):
    """Too many calls, or every stream slot is taken (HTTP 429). ``retry_after``: seconds
    to wait, when the edge said (its ``retry-after``), else None."""

    def __init__(
        self,
        status: grpc.StatusCode,
        message: str,
        retry_after: float | None,
        call: grpc.RpcError | None = None,
    ) -> None:
        super().__init__(status, message, call)
        self.retry_after = retry_after


class Unavailable(CornjacketError):
    """The platform could not be reached or is starting/stopping; retry later (HTTP 503).
    Deadline exceeded is one too: the outcome of the call is unknown."""


class Aborted(CornjacketError):
    """The server cut the call off (e.g. a stream too slow to read); retry or resume."""


class Internal(CornjacketError):
    """A failure on the platform's side (HTTP 500), or a status without a class of its own."""


class Unimplemented(CornjacketError):
    """No such method here (HTTP 501): an older server, or a route the edge does not know."""


class Cancelled(CornjacketError):
    """The call was cancelled (by this client, or its connection closed under it)."""


_BY_CODE: dict[grpc.StatusCode, type[CornjacketError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.CANCELLED: Cancelled,
}


def _pairs(e: Any, getter: str) -> Metadata:
    try:
        return tuple(getattr(e, getter)() or ())
    except Exception:  # an error without metadata (or of a call not finished)
        return ()


def _find(pairs: Metadata, name: str) -> str | None:
    for key, value in pairs:
        if key.lower() == name:
            return value if isinstance(value, str) else value.decode()
    return None


def from_rpc_error(e: grpc.RpcError) -> CornjacketError:
    """The SDK's exception for a gRPC error (sync or asyncio)."""
    if isinstance(e, CornjacketError):
        return e
    code = getattr(e, "code", None)
    details = getattr(e, "details", None)
    status = code() if callable(code) else grpc.StatusCode.UNKNOWN
    message = (details() if callable(details) else None) or str(e)
    if status == grpc.StatusCode.RESOURCE_EXHAUSTED:
        raw = _find(_pairs(e, "trailing_metadata") + _pairs(e, "initial_metadata"), "retry-after")
        try:
            retry_after = float(raw) if raw is not None else None
        except ValueError:
            retry_after = None
        return RateLimited(status, message, retry_after, e)
    return _BY_CODE.get(status, Internal)(status, message, e)


P = ParamSpec("P")
R = TypeVar("R")


def mapped(fn: Callable[P, R]) -> Callable[P, R]:
    """A call whose gRPC errors are raised as the SDK's exceptions."""

    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e

    return call


def mapped_async(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """``mapped`` for coroutines (grpc.aio)."""

    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e

    return call
