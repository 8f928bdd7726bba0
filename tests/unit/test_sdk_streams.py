"""The Python SDK's live streams (issue 19): reopened from the position, but a client cut
off again and again without progress is told so (review of issue 19), with a backoff."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from cornjacket.v1 import watch_pb2
from cornjacket_sdk import errors, streams

pytestmark = pytest.mark.unit


class _Failed(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str = "cut off") -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def _hb(p: str) -> watch_pb2.WatchEventsResponse:
    return watch_pb2.WatchEventsResponse(heartbeat=watch_pb2.WatchHeartbeat(), position=p)


def _ev(p: str, event_id: str) -> watch_pb2.WatchEventsResponse:
    msg = watch_pb2.WatchEventsResponse(position=p)
    msg.event.event_id = event_id
    return msg


def _too_slow(p: str) -> watch_pb2.WatchEventsResponse:
    return watch_pb2.WatchEventsResponse(
        end=watch_pb2.WatchEnd(reason=watch_pb2.WATCH_END_REASON_TOO_SLOW, message="behind"),
        position=p,
    )


class _Call:
    def __init__(self, msgs: list[Any], exc: grpc.RpcError | None = None) -> None:
        self._it: Iterator[Any] = iter(msgs)
        self._exc = exc

    def __iter__(self) -> _Call:
        return self

    def __next__(self) -> Any:
        for m in self._it:
            return m
        if self._exc is not None:
            raise self._exc
        raise StopIteration

    def cancel(self) -> None:
        pass


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr("cornjacket_sdk.streams.time.sleep", slept.append)
    return slept


def test_a_client_ended_as_too_slow_again_and_again_is_told_so(waits: list[float]) -> None:
    opens: list[str] = []

    def open_call(at: str) -> _Call:
        opens.append(at)
        if len(opens) > 50:
            pytest.fail(f"reopened {len(opens)} times, never raised")
        return _Call([_hb("w1.p"), _too_slow("w1.p")])

    s = streams.Stream(open_call, streams.event_of)
    with pytest.raises(errors.Aborted, match="too_slow"):
        next(s)
    assert len(opens) == streams.MAX_RESUMES + 1
    assert len(waits) == streams.MAX_RESUMES and all(w > 0 for w in waits)  # a backoff
    assert waits == sorted(waits)


def test_a_send_timeout_again_and_again_is_raised(waits: list[float]) -> None:
    opens: list[str] = []

    def open_call(at: str) -> _Call:
        opens.append(at)
        if len(opens) > 50:
            pytest.fail(f"reopened {len(opens)} times, never raised")
        return _Call([_hb("w1.p")], _Failed(grpc.StatusCode.ABORTED))

    s = streams.Stream(open_call, streams.event_of)
    with pytest.raises(errors.Aborted):
        next(s)
    assert len(opens) == streams.MAX_RESUMES + 1


def test_an_event_between_cut_offs_starts_the_count_again(waits: list[float]) -> None:
    opens: list[str] = []

    def open_call(at: str) -> _Call:
        opens.append(at)
        n = len(opens)
        if n == 20:
            return _Call([])  # the server closes the stream: done
        return _Call([_hb(f"w1.{n}"), _ev(f"w1.{n}", f"e{n}"), _too_slow(f"w1.{n}")])

    got = [ev.event_id for ev in streams.Stream(open_call, streams.event_of)]
    assert got == [f"e{n}" for n in range(1, 20)]
    assert opens[1:4] == ["w1.1", "w1.2", "w1.3"]  # reopened from the position


def test_a_refused_request_is_not_reopened(waits: list[float]) -> None:
    opens: list[str] = []

    def open_call(at: str) -> _Call:
        opens.append(at)
        return _Call([], _Failed(grpc.StatusCode.FAILED_PRECONDITION, "expired"))

    with pytest.raises(errors.FailedPrecondition):
        next(streams.Stream(open_call, streams.event_of))
    assert len(opens) == 1
