"""Reading again what the broker skipped (ADR 18, "The embedded broker's skipped batches").

The bus's topics are neither compacted nor transactional, so a partition's offsets come one
after another from where reading started; a jump means a record batch never reached the
consumer. The embedded broker (Tansu 0.6, memory storage) does that when two producers write
one partition at once: a later batch becomes readable before an earlier one, and a consumer
at the end of the partition reads past the earlier one for good. On a jump the reader seeks
back to the first missing offset and drops what it got of that partition from the jump on,
so nothing past the hole is used before the hole is read. A hole still there after the
reread window is taken as real (a broker that truly has no such offsets), logged as an
error, and passed. Shared by the consumer loop (every consumer group) and the watch streams.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

log = logging.getLogger(__name__)

# How long a skipped range is read again before it is taken as missing for good (the
# embedded broker stored a late batch 25-40 ms later in the review's measurement at load 17).
REREAD_WINDOW = 5.0

Key = tuple[str, int]


class Offsetted(Protocol):
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...


M = TypeVar("M", bound="Offsetted")


class SkipGuard:
    def __init__(self, reader: str, window: float = REREAD_WINDOW) -> None:
        self._reader = reader  # who reads, for the logs
        self._window = window
        # The offset each partition's next message should have.
        self.next: dict[Key, int] = {}
        # Partitions being read again: (first missing offset, reads so far, first seen).
        self._rereads: dict[Key, tuple[int, int, float]] = {}

    def expect(self, key: Key, offset: int) -> None:
        self.next[key] = offset
        self._rereads.pop(key, None)

    def forget(self, key: Key) -> None:
        self.next.pop(key, None)
        self._rereads.pop(key, None)

    def filter(self, msgs: Sequence[M], seek: Callable[[Key, int], bool]) -> list[M]:
        """``msgs`` without what follows a skipped offset; ``seek(key, offset)`` moves the
        reader back (False: it could not, and the hole is passed)."""
        kept: list[M] = []
        cut: set[Key] = set()
        for m in msgs:
            key = (str(m.topic()), int(m.partition() or 0))
            if key in cut:
                continue
            offset = int(m.offset() or 0)
            expected = self.next.get(key)
            if expected is None:
                log.info(
                    "reading a partition",
                    extra={"reader": self._reader, "partition": _name(key), "offset": offset},
                )
            elif offset > expected:
                if self._read_again(key, expected, offset, seek):
                    cut.add(key)
                    continue
            elif key in self._rereads:
                log.info(
                    "skipped offsets read again",
                    extra={
                        "reader": self._reader,
                        "partition": _name(key),
                        "offset": offset,
                        "attempts": self._rereads[key][1],
                    },
                )
                del self._rereads[key]
            self.next[key] = offset + 1
            kept.append(m)
        return kept

    def _read_again(
        self, key: Key, expected: int, got: int, seek: Callable[[Key, int], bool]
    ) -> bool:
        hole, tries, since = self._rereads.get(key, (expected, 0, time.monotonic()))
        if hole != expected:
            tries, since = 0, time.monotonic()
        if time.monotonic() - since < self._window:
            if seek(key, expected):
                self._rereads[key] = (expected, tries + 1, since)
                if tries == 0:  # once per hole, not per read
                    log.warning(
                        "offsets skipped between the broker and this consumer; reading them again",
                        extra={
                            "reader": self._reader,
                            "partition": _name(key),
                            "expected": expected,
                            "got": got,
                        },
                    )
                return True
            why = "could not seek back to them"
        else:
            why = f"still skipped after {tries} reads in {self._window:g}s"
        self._rereads.pop(key, None)
        log.error(
            "offsets missing from the bus; going on",
            extra={
                "reader": self._reader,
                "partition": _name(key),
                "missing_from": expected,
                "missing_to": got - 1,
                "why": why,
            },
        )
        return False


def _name(key: Key) -> str:
    return f"{key[0]}[{key[1]}]"
