"""Map the platform's errors to gRPC status codes at the transport edge."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from services.core.errors import InvalidInput, NotFound, Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")


def request_id(context: grpc.ServicerContext | grpc.aio.ServicerContext) -> str:
    """The call's x-request-id (Envoy sets a fresh one on every request at the edge), or a
    new one for a call that did not come through the edge."""
    return metadata_value(context, "x-request-id")[:64] or uuid.uuid4().hex


def _failure(fn: Callable[..., Any], e: Exception, context: Any) -> tuple[grpc.StatusCode, str]:
    """The status and the message for the client. The platform's own words (invalid input,
    not found, an outage it describes itself) reach the client; anything that wraps a driver
    or library error (its text names hosts, addresses, tables) is logged with the request id
    and the client gets a generic message with that id."""
    if isinstance(e, InvalidInput):
        return grpc.StatusCode.INVALID_ARGUMENT, str(e)
    if isinstance(e, NotFound):
        return grpc.StatusCode.NOT_FOUND, str(e)
    rid = request_id(context)
    if isinstance(e, Unavailable):
        log.warning(
            "request failed: dependency unavailable", extra={"error": str(e), "request_id": rid}
        )
        if e.__cause__ is None:  # raised with the platform's own message, nothing wrapped
            return grpc.StatusCode.UNAVAILABLE, f"service temporarily unavailable: {e}"
        return (
            grpc.StatusCode.UNAVAILABLE,
            f"service temporarily unavailable; retry later (request id {rid})",
        )
    log.error(
        "unexpected error in %s",
        fn.__name__,
        exc_info=e,
        extra={"error": str(e), "request_id": rid},
    )
    return grpc.StatusCode.INTERNAL, f"internal error (request id {rid})"


def grpc_errors(
    fn: Callable[..., Awaitable[T]],
) -> Callable[..., Awaitable[T]]:
    """Decorate an async servicer method: known errors become status codes, the rest INTERNAL
    (see _failure for what the client is told)."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> T:
        try:
            return await fn(self, request, context)
        except Exception as e:
            code, message = _failure(fn, e, context)
            await context.abort(code, message)
        raise AssertionError("unreachable")  # abort() always raises

    return wrapper


def grpc_errors_sync(fn: Callable[..., T]) -> Callable[..., T]:
    """The same mapping for synchronous servicers (the event handler's thread-pool server)."""

    @functools.wraps(fn)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> T:
        try:
            return fn(self, request, context)
        except Exception as e:
            code, message = _failure(fn, e, context)
            context.abort(code, message)
        raise AssertionError("unreachable")  # abort() always raises

    return wrapper


def metadata_value(context: grpc.ServicerContext | grpc.aio.ServicerContext, key: str) -> str:
    for k, v in context.invocation_metadata() or ():
        if k == key:
            return v if isinstance(v, str) else v.decode()
    return ""
