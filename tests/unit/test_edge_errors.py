"""What a client learns from a failed call (services/infra/grpc_errors.py): the platform's own
words for what it can explain, and for anything internal a generic message with the request
id, whose log line holds the real error (host names, driver texts) under the same id."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
import psycopg
import pytest

from services.core.errors import InvalidInput, Unavailable
from services.infra.grpc_errors import grpc_errors, grpc_errors_sync

SECRET = 'connection to server at "db-7.internal.example" (10.1.2.3), port 5432 failed'


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details


class Context:
    """The two things the mapping uses of a ServicerContext."""

    def __init__(self, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)


class AsyncContext(Context):
    async def abort(self, code: grpc.StatusCode, details: str) -> None:  # type: ignore[override]
        raise Aborted(code, details)


def _driver_error() -> Exception:
    return psycopg.OperationalError(SECRET)


def _wrapped_driver_error() -> Exception:
    try:
        raise _driver_error()
    except psycopg.Error as e:
        try:
            raise Unavailable(f"database unavailable while reading: {e}") from e
        except Unavailable as u:
            return u


class Servicer:
    def __init__(self, error: Exception) -> None:
        self.error = error

    @grpc_errors
    async def call(self, request: Any, context: Any) -> None:
        raise self.error

    @grpc_errors_sync
    def call_sync(self, request: Any, context: Any) -> None:
        raise self.error


def _run(servicer: Servicer, sync: bool, metadata: tuple[tuple[str, str], ...]) -> Aborted:
    with pytest.raises(Aborted) as info:
        if sync:
            servicer.call_sync(None, Context(metadata))
        else:

            async def call() -> None:
                await servicer.call(None, AsyncContext(metadata))

            asyncio.run(call())
    return info.value


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
@pytest.mark.parametrize(
    ("make", "code"),
    [
        (_driver_error, grpc.StatusCode.INTERNAL),
        (_wrapped_driver_error, grpc.StatusCode.UNAVAILABLE),
    ],
    ids=["internal", "unavailable"],
)
def test_an_internal_error_reaches_the_log_not_the_client(
    caplog: pytest.LogCaptureFixture, sync: bool, make: Any, code: grpc.StatusCode
) -> None:
    caplog.set_level(logging.WARNING, logger="services.infra.grpc_errors")
    err = _run(Servicer(make()), sync, (("x-request-id", "rid-1234"),))
    assert err.code == code
    assert "internal.example" not in err.details and "10.1.2.3" not in err.details
    assert "rid-1234" in err.details
    logged = [r for r in caplog.records if getattr(r, "request_id", "") == "rid-1234"]
    assert logged, caplog.records
    text = " ".join(
        r.getMessage() + str(getattr(r, "error", "")) + str(r.exc_info and r.exc_info[1])
        for r in logged
    )
    assert "db-7.internal.example" in text


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
def test_without_a_request_id_one_is_made_and_logged(
    caplog: pytest.LogCaptureFixture, sync: bool
) -> None:
    caplog.set_level(logging.WARNING, logger="services.infra.grpc_errors")
    err = _run(Servicer(_driver_error()), sync, ())
    ids = {getattr(r, "request_id", "") for r in caplog.records} - {""}
    assert len(ids) == 1
    assert next(iter(ids)) in err.details


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
def test_the_platforms_own_words_still_reach_the_client(sync: bool) -> None:
    err = _run(Servicer(InvalidInput("aggregate_id is required")), sync, ())
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details == "aggregate_id is required"
    full = Unavailable("ingestion queue full: 10 events are waiting for the database; retry later")
    err = _run(Servicer(full), sync, (("x-request-id", "rid-9"),))
    assert err.code == grpc.StatusCode.UNAVAILABLE
    assert "ingestion queue full" in err.details
