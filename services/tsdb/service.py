"""The time-series cores: the writer's batch (events in, points stored) and the series
reads (validated, planned, then read)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.core.errors import InvalidInput
from services.core.events import Event
from services.tsdb.ports import (
    Buckets,
    Latest,
    PartitionGone,
    PointWriter,
    Series,
    SeriesReader,
)
from services.tsdb.series import (
    MAX_DEVICE_LEN,
    READING_TYPES,
    Point,
    SeriesQuery,
    expired,
    partition_day,
    plan,
    points_of,
    validate,
)

log = logging.getLogger(__name__)

MAX_SERIES_PAGE = 1000
# Latest values answered per device (the first by metric name; the answer says when there
# are more, and ListSeries pages through them all).
MAX_LATEST = 1000


@dataclass(frozen=True, slots=True)
class LatestValues:
    values: list[Latest]
    truncated: bool  # the device has more metrics than MAX_LATEST


@dataclass(slots=True)
class WriteOutcome:
    events: int = 0
    points: int = 0
    written: int = 0
    too_old: int = 0
    refused: int = 0


class SeriesWriter:
    """Turns a polled batch of sensor events into points and writes them in one call.
    Points older than the retention are not written (their partition is gone or about to
    be). If the database refuses the batch (InvalidInput) it is halved until only the
    points it refuses alone are skipped (logged, counted); Unavailable goes to the loop,
    which blocks. If retention dropped a day under the write (PartitionGone), the points
    expired by ``clock()`` (retention's clock) are counted too_old and the rest is written
    once more."""

    def __init__(
        self,
        writer: PointWriter,
        retention_seconds: float,
        event_types: Sequence[str] = READING_TYPES,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._writer = writer
        self._retention = retention_seconds
        self._types = tuple(event_types)
        self._clock = clock

    def handle(self, events: Sequence[Event], now: datetime) -> WriteOutcome:
        out = WriteOutcome(events=len(events))
        keep = timedelta(seconds=self._retention)
        flat: list[Point] = []
        for e in events:
            for p in points_of(e, self._types):
                if expired(partition_day(p.time), now, keep):
                    out.too_old += 1
                else:
                    flat.append(p)
        out.points = len(flat)
        if flat:
            try:
                self._write(flat, out)
            except PartitionGone as e:
                later = max(now, self._clock()) if self._clock else now
                log.warning("a partition went away; retrying once", extra={"error": str(e)})
                kept = [p for p in flat if not expired(partition_day(p.time), later, keep)]
                out.too_old += len(flat) - len(kept)
                out.points = len(kept)
                # The retry sees again what the first try refused (not counted twice); what
                # it wrote is a duplicate now (counted once, there).
                again = WriteOutcome()
                self._write(kept, again)
                out.written += again.written
                out.refused = again.refused
        return out

    def _write(self, points: Sequence[Point], out: WriteOutcome) -> None:
        """Write the points; if the database refuses them, halve and retry, so only the
        points it refuses one by one are skipped (never a whole batch or event)."""
        try:
            out.written += self._writer.write(points)
        except InvalidInput as e:
            if len(points) == 1:
                out.refused += 1
                log.error(
                    "skipping a point that cannot be stored",
                    extra={
                        "event_id": points[0].event_id,
                        "metric": points[0].metric,
                        "error": str(e),
                    },
                )
                return
            half = len(points) // 2
            self._write(points[:half], out)
            self._write(points[half:], out)


class SeriesService:
    def __init__(self, reader: SeriesReader, max_points: int) -> None:
        self._reader = reader
        self._max_points = max_points

    async def buckets(self, q: SeriesQuery) -> Buckets:
        validate(q, self._max_points)
        return await self._reader.buckets(q, plan(q))

    async def latest(self, device: str) -> LatestValues:
        if not device or len(device) > MAX_DEVICE_LEN:
            raise InvalidInput(f"device must be 1..{MAX_DEVICE_LEN} characters")
        values = await self._reader.latest(device, MAX_LATEST + 1)
        return LatestValues(values[:MAX_LATEST], len(values) > MAX_LATEST)

    async def series(self, device_prefix: str, page_token: str, limit: int) -> list[Series]:
        if not 0 <= limit <= MAX_SERIES_PAGE:
            raise InvalidInput(f"limit {limit} is outside 1..{MAX_SERIES_PAGE} (0: 100)")
        after = ("", "")
        if page_token:
            device, sep, metric = page_token.rpartition("\x1f")
            if not sep:
                raise InvalidInput("page_token is not one this service handed out")
            after = (device, metric)
        return await self._reader.series(device_prefix, after, limit or 100)


def page_token(last: Series) -> str:
    return f"{last.device}\x1f{last.metric}"
