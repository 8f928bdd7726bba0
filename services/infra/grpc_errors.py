"""Map the platform's errors to gRPC status codes at the transport edge."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from services.core.errors import InvalidInput, NotFound, Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")


def grpc_errors(
    fn: Callable[..., Awaitable[T]],
) -> Callable[..., Awaitable[T]]:
    """Decorate an async servicer method: known errors become status codes, the rest INTERNAL."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> T:
        try:
            return await fn(self, request, context)
        except InvalidInput as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except NotFound as e:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(e))
        except Unavailable as e:
            log.warning("request failed: dependency unavailable", extra={"error": str(e)})
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, "service temporarily unavailable: " + str(e)
            )
        except Exception:
            log.exception("unexpected error in %s", fn.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")
        raise AssertionError("unreachable")  # abort() always raises

    return wrapper


def grpc_errors_sync(fn: Callable[..., T]) -> Callable[..., T]:
    """The same mapping for synchronous servicers (the event handler's thread-pool server)."""

    @functools.wraps(fn)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> T:
        try:
            return fn(self, request, context)
        except InvalidInput as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except NotFound as e:
            context.abort(grpc.StatusCode.NOT_FOUND, str(e))
        except Unavailable as e:
            log.warning("request failed: dependency unavailable", extra={"error": str(e)})
            context.abort(grpc.StatusCode.UNAVAILABLE, "service temporarily unavailable: " + str(e))
        except Exception:
            log.exception("unexpected error in %s", fn.__name__)
            context.abort(grpc.StatusCode.INTERNAL, "internal error")
        raise AssertionError("unreachable")  # abort() always raises

    return wrapper


def metadata_value(context: grpc.aio.ServicerContext, key: str) -> str:
    for k, v in context.invocation_metadata() or ():
        if k == key:
            return v if isinstance(v, str) else v.decode()
    return ""
