"""Live streams as iterators (``for`` / ``async for``), resumed by themselves.

``stream.position`` is where the stream stands: after the last item handed out (and any
heartbeat read since). Keep it to resume later (``watch_events(position=...)``). A stream
the server ends (too slow, shutting down) or a connection lost is reopened from that
position when ``resume=True`` (the default): no gap and no duplicate on the event stream.
A stream ended for its age (the server's CJ_WATCH_MAX_DURATION) is reopened at once, without
a backoff and without counting as a failure.
A projection stream cut off while still sending the current state starts it again. A stream
refused because every watcher slot is taken (RateLimited) is retried the same way, after a
backoff. After ``MAX_RESUMES`` reopenings in a row without progress (no item handed out, no
heartbeat but each stream's first) the stream raises its last failure: ``Aborted`` for a
client cut off as too slow again and again. Errors of the request or the token (an expired
position, 400, 401, 403) are raised at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Generic, TypeVar

import grpc
from cornjacket.v1 import watch_pb2

from cornjacket_sdk.errors import (
    Aborted,
    CornjacketError,
    RateLimited,
    Unavailable,
    from_rpc_error,
)
from cornjacket_sdk.models import Event, Projection, StreamEnd

T = TypeVar("T")
MAX_RESUMES = 5  # reopenings in a row without progress before the stream raises

_END_REASONS = {
    watch_pb2.WATCH_END_REASON_TOO_SLOW: "too_slow",
    watch_pb2.WATCH_END_REASON_SHUTDOWN: "shutdown",
    watch_pb2.WATCH_END_REASON_MAX_DURATION: "max_duration",
}


def event_of(msg: Any) -> Event:
    return Event.from_proto(msg.event)


def projection_of(msg: Any) -> Projection:
    return Projection.from_proto(msg.projection)


class _State(Generic[T]):
    def __init__(self, pick: Callable[[Any], T], position: str, snapshot: bool, resume: bool):
        self.position = position
        # Projection streams without a position send the current state first: until its
        # heartbeat a resume must start it again (its positions say "changes after").
        self.current = not snapshot
        self.end: StreamEnd | None = None
        self._pick = pick
        self._resume = resume
        self._failures = 0
        self._heartbeats = 0
        self.closed = False

    def start_at(self) -> str:
        """Where to open the stream; a new stream has sent no heartbeat yet."""
        self._heartbeats = 0
        return self.position if self.current else ""

    def take(self, msg: Any) -> tuple[float | None, T | None]:
        """(seconds to wait before reopening, or None to read on; an item to hand out).
        Raises when a stream the server ended should not be reopened."""
        which = msg.WhichOneof("item")
        if which == "end":
            self.position = msg.position or self.position
            reason = _END_REASONS.get(msg.end.reason, "unspecified")
            self.end = StreamEnd(reason, msg.end.message)
            if not self._resume:
                self.closed = True
                return 0.0, None
            if reason == "max_duration":  # the stream's age, not a failure: reopen at once
                return 0.0, None
            text = f"the server ended the stream ({reason}): {msg.end.message}"
            kind = Unavailable if reason == "shutdown" else Aborted
            status = (
                grpc.StatusCode.UNAVAILABLE if reason == "shutdown" else grpc.StatusCode.ABORTED
            )
            return self._again(kind(status, text)), None
        if msg.position and (self.current or which == "heartbeat"):
            self.position = msg.position
        if which == "heartbeat":
            # Every stream starts with one: only a later one (the stream stayed open a
            # heartbeat interval) is progress.
            self._heartbeats += 1
            if self._heartbeats > 1:
                self._failures = 0
            self.current = True
            return None, None
        self._failures = 0
        return None, self._pick(msg)

    def failed(self, e: grpc.RpcError) -> float:
        """Seconds to wait before reopening; raises when it should not be reopened."""
        err = from_rpc_error(e)
        if (
            self.closed
            or not self._resume
            or not isinstance(err, Unavailable | Aborted | RateLimited)
        ):
            self.closed = True
            raise err from e
        return self._again(err)

    def _again(self, err: CornjacketError) -> float:
        if self._failures >= MAX_RESUMES:
            self.closed = True
            raise err
        self._failures += 1
        wait = min(2.0, 0.1 * 2**self._failures)
        if isinstance(err, RateLimited) and err.retry_after:  # every watcher slot taken
            wait = max(wait, err.retry_after)
        return float(wait)


class _Props(Generic[T]):
    _state: _State[T]

    @property
    def position(self) -> str:
        return self._state.position

    @property
    def current(self) -> bool:
        """A projection stream has sent the whole current state (then come changes)."""
        return self._state.current

    @property
    def end(self) -> StreamEnd | None:
        """Why the server last ended the stream, if it did."""
        return self._state.end


class Stream(_Props[T]):
    """A live stream: ``for item in stream``; ``stream.position``; ``stream.cancel()``."""

    def __init__(
        self,
        open_call: Callable[[str], Any],
        pick: Callable[[Any], T],
        *,
        position: str = "",
        snapshot: bool = False,
        resume: bool = True,
    ) -> None:
        self._open = open_call
        self._state = _State(pick, position, snapshot, resume)
        self._call: Any = None
        self._ahead: list[T | None] = []

    def __iter__(self) -> Iterator[T]:
        return self

    def start(self) -> str:
        """Open the stream and wait for its first message (the server has its position
        then: an event sent after this is on the stream); returns the position."""
        if self._call is None and not self._ahead:
            self._ahead.append(self._next(stop_at_first=True))
        return self.position

    def __next__(self) -> T:
        if self._ahead:
            item = self._ahead.pop()
            if item is not None:
                return item
        result = self._next()
        assert result is not None
        return result

    def _next(self, *, stop_at_first: bool = False) -> T | None:
        while True:
            if self._state.closed:
                raise StopIteration
            if self._call is None:
                self._call = self._open(self._state.start_at())
            try:
                msg = next(self._call)
            except StopIteration:
                self._call = None
                self._state.closed = True
                raise
            except grpc.RpcError as e:
                self._call = None
                time.sleep(self._state.failed(e))
                continue
            if msg.WhichOneof("item") == "end":  # the server is done with this call
                self._call.cancel()
                self._call = None
            reopen_after, item = self._state.take(msg)
            if reopen_after is not None:
                time.sleep(reopen_after)
            elif item is not None or stop_at_first:
                return item

    def cancel(self) -> None:
        self._state.closed = True
        if self._call is not None:
            self._call.cancel()
            self._call = None

    def __enter__(self) -> Stream[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class AsyncStream(_Props[T]):
    """``async for item in stream``; ``stream.position``; ``stream.cancel()``."""

    def __init__(
        self,
        open_call: Callable[[str], Any],
        pick: Callable[[Any], T],
        *,
        position: str = "",
        snapshot: bool = False,
        resume: bool = True,
    ) -> None:
        self._open = open_call
        self._state = _State(pick, position, snapshot, resume)
        self._call: Any = None
        self._ahead: list[T | None] = []

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def start(self) -> str:
        """See Stream.start."""
        if self._call is None and not self._ahead:
            self._ahead.append(await self._next(stop_at_first=True))
        return self.position

    async def __anext__(self) -> T:
        if self._ahead:
            item = self._ahead.pop()
            if item is not None:
                return item
        result = await self._next()
        assert result is not None
        return result

    async def _next(self, *, stop_at_first: bool = False) -> T | None:
        while True:
            if self._state.closed:
                raise StopAsyncIteration
            if self._call is None:
                self._call = self._open(self._state.start_at())
            try:
                msg = await self._call.read()
            except grpc.RpcError as e:
                self._call = None
                await asyncio.sleep(self._state.failed(e))
                continue
            if msg is grpc.aio.EOF:
                self._call = None
                self._state.closed = True
                raise StopAsyncIteration
            if msg.WhichOneof("item") == "end":  # the server is done with this call
                self._call.cancel()
                self._call = None
            reopen_after, item = self._state.take(msg)
            if reopen_after is not None:
                await asyncio.sleep(reopen_after)
            elif item is not None or stop_at_first:
                return item

    def cancel(self) -> None:
        self._state.closed = True
        if self._call is not None:
            self._call.cancel()
            self._call = None

    async def __aenter__(self) -> AsyncStream[T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cancel()


__all__ = ["AsyncStream", "CornjacketError", "Stream"]
