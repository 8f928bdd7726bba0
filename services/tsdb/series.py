"""The rules of the time series, free of I/O: which payload fields become points, bucketing,
rollup arithmetic, day partitions and which of them retention drops (ADR 19)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from services.core.errors import InvalidInput
from services.core.events import Event

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)

# A metric is a payload field name; other fields (or names) are not series.
METRIC_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # used with fullmatch ("temp\n" is no name)
# The event types whose numeric fields are points (CJ_TSDB_EVENT_TYPES).
READING_TYPES = ("sensor.reading",)
MAX_DEVICE_LEN = 256

BUCKET_MIN = timedelta(seconds=1)
BUCKET_MAX = timedelta(days=1)
_BUCKET_RE = re.compile(r"^(\d{1,6})(s|m|h|d)$")
_BUCKET_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, slots=True)
class Point:
    device: str
    metric: str
    time: datetime
    value: float
    event_id: str


def points_of(event: Event, types: Sequence[str] = READING_TYPES) -> list[Point]:
    """Each finite numeric top-level payload field (not a boolean) of a reading (an event
    of one of ``types``); other events have no points."""
    if event.event_type not in types:
        return []
    device = event.aggregate_id
    if not device or len(device) > MAX_DEVICE_LEN or "\x00" in device:
        return []
    out: list[Point] = []
    for name, value in event.payload.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not METRIC_RE.fullmatch(name):
            continue
        try:
            number = float(value)
        except OverflowError:  # an int beyond float's range
            continue
        if not math.isfinite(number):
            continue
        out.append(Point(device, name, event.event_time, number, event.event_id))
    return out


def floor_time(t: datetime, step: timedelta) -> datetime:
    """The start of the step-long bucket holding t (buckets counted from the Unix epoch)."""
    n = (t - EPOCH) // step
    return EPOCH + n * step


def ceil_time(t: datetime, step: timedelta) -> datetime:
    start = floor_time(t, step)
    return start if start == t else start + step


# What a series answer can carry per bucket, in the answer's column order.
AGGREGATES = ("count", "sum", "min", "max", "avg", "first", "last")


def parse_aggregates(values: Iterable[str]) -> frozenset[str]:
    """The aggregates asked for: names from AGGREGATES, each value possibly a comma-separated
    list ("avg,max"); none asked means all of them."""
    names = {n.strip().lower() for v in values for n in v.split(",") if n.strip()}
    unknown = sorted(names - set(AGGREGATES))
    if unknown:
        raise InvalidInput(
            f"aggregates {', '.join(repr(u[:32]) for u in unknown[:3])} unknown: choose from "
            f"{', '.join(AGGREGATES)} (none: all of them)"
        )
    return frozenset(names or AGGREGATES)


def parse_bucket(text: str) -> timedelta:
    """'1s'..'1d' (s, m, h or d); anything else is the caller's mistake, with the rule."""
    m = _BUCKET_RE.match(text.strip())
    if not m:
        raise InvalidInput(f"bucket {text!r} is not a duration like 10s, 1m, 1h or 1d")
    bucket = timedelta(seconds=int(m.group(1)) * _BUCKET_UNIT[m.group(2)])
    if not BUCKET_MIN <= bucket <= BUCKET_MAX:
        raise InvalidInput(f"bucket {text!r} is outside 1s..1d")
    return bucket


@dataclass(frozen=True, slots=True)
class Aggregate:
    """count, sum, min, max, first and last of a set of points; combining two sets that do
    not overlap in time, the earlier one first, gives the aggregate of their union."""

    count: int
    sum: float
    min: float
    max: float
    first: float
    last: float

    @property
    def avg(self) -> float:
        return self.sum / self.count

    @classmethod
    def of(cls, points: Sequence[tuple[datetime, str, float]]) -> Aggregate:
        """Points as (time, event_id, value); first/last by time, then event_id."""
        ordered = sorted(points)
        values = [v for _, _, v in ordered]
        return cls(len(values), sum(values), min(values), max(values), values[0], values[-1])

    def then(self, later: Aggregate) -> Aggregate:
        return Aggregate(
            self.count + later.count,
            self.sum + later.sum,
            min(self.min, later.min),
            max(self.max, later.max),
            self.first,
            later.last,
        )


# --- day partitions and retention ------------------------------------------------------


def partition_day(t: datetime) -> date:
    return floor_time(t, DAY).date()


def partition_name(prefix: str, day: date) -> str:
    return f"{prefix}_p{day:%Y%m%d}"


def day_of_partition(prefix: str, name: str) -> date | None:
    """The day a partition we named holds; None for any other table."""
    m = re.fullmatch(re.escape(prefix) + r"_p(\d{8})", name)
    if not m:
        return None
    try:
        return datetime.strptime(m.group(1), "%Y%m%d").date()
    except ValueError:
        return None


def days_ahead(now: datetime, ahead: int) -> list[date]:
    """Today's partition and the next ``ahead`` days'."""
    today = partition_day(now)
    return [today + timedelta(days=i) for i in range(ahead + 1)]


def expired(day: date, now: datetime, retention: timedelta) -> bool:
    """A day partition is dropped once all of it is older than the retention: its end
    (the next midnight) at or before now - retention."""
    end = datetime(day.year, day.month, day.day, tzinfo=UTC) + DAY
    return end <= now - retention


def to_drop(names: Iterable[str], prefix: str, now: datetime, retention: timedelta) -> list[str]:
    """Which of a table's partitions retention drops, oldest first."""
    found = [(d, n) for n in names if (d := day_of_partition(prefix, n)) is not None]
    return [n for d, n in sorted(found) if expired(d, now, retention)]


# --- series reads ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeriesQuery:
    device: str
    metric: str
    start: datetime
    end: datetime
    bucket: timedelta
    aggregates: frozenset[str] = frozenset(AGGREGATES)


@dataclass(frozen=True, slots=True)
class Plan:
    """How to answer a series read: [start, rollup_from) and [rollup_to, end) from the raw
    points, [rollup_from, rollup_to) from the rollup of ``rollup`` (None: raw only)."""

    rollup: timedelta | None
    rollup_from: datetime
    rollup_to: datetime


ROLLUPS = (HOUR, MINUTE)
# Series reads: times a bucket can be computed for in every offset, and the longest range
# read from raw points (buckets under a minute).
TIME_MAX = datetime(9999, 12, 30, tzinfo=UTC)
RAW_RANGE_MAX = DAY


def plan(q: SeriesQuery) -> Plan:
    """The coarsest rollup whose step divides the bucket (so a bucket is whole rollup rows)
    covers the aligned middle of the range; the unaligned edges come from raw points."""
    for step in ROLLUPS:
        if q.bucket % step:
            continue
        lo, hi = ceil_time(q.start, step), floor_time(q.end, step)
        if lo < hi:
            return Plan(step, lo, hi)
    return Plan(None, q.end, q.end)


def validate(q: SeriesQuery, max_points: int) -> None:
    if not q.device or len(q.device) > MAX_DEVICE_LEN:
        raise InvalidInput(f"device must be 1..{MAX_DEVICE_LEN} characters")
    if not METRIC_RE.fullmatch(q.metric):
        raise InvalidInput(f"metric {q.metric!r} is not a metric name ({METRIC_RE.pattern})")
    if q.start.tzinfo is None or q.end.tzinfo is None:
        raise InvalidInput("from and to must carry a time zone")
    if q.end <= q.start:
        raise InvalidInput(f"from ({q.start.isoformat()}) must be before to ({q.end.isoformat()})")
    if q.start < EPOCH or q.end > TIME_MAX:
        raise InvalidInput(
            f"from and to must lie within {EPOCH.isoformat()}..{TIME_MAX.isoformat()} "
            f"(got {q.start.isoformat()}..{q.end.isoformat()})"
        )
    buckets = math.ceil((q.end - q.start) / q.bucket) + 1
    if buckets > max_points:
        raise InvalidInput(
            f"the range of {(q.end - q.start).total_seconds():g}s in "
            f"{int(q.bucket.total_seconds())}s buckets spans "
            f"up to {buckets} buckets; at most {max_points} per answer: use a larger bucket or "
            "a shorter range"
        )
    # A bucket that is not whole rollup rows would be read from raw points over the whole
    # range (max_points bounds buckets, not rows): the rule, or a short raw range.
    if q.bucket >= HOUR and q.bucket % HOUR:
        raise InvalidInput(
            f"bucket of {int(q.bucket.total_seconds())}s: buckets of 1h or more must be whole "
            "hours (read from the hour rollup)"
        )
    if q.bucket >= MINUTE and q.bucket % MINUTE:
        raise InvalidInput(
            f"bucket of {int(q.bucket.total_seconds())}s: buckets of 1m or more must be whole "
            "minutes (read from the minute rollup)"
        )
    if q.bucket < MINUTE and q.end - q.start > RAW_RANGE_MAX:
        raise InvalidInput(
            f"the range of {(q.end - q.start).total_seconds():g}s is too long for "
            f"{int(q.bucket.total_seconds())}s buckets: buckets under 1m read raw points: at "
            f"most {RAW_RANGE_MAX.total_seconds():g}s; use a bucket of 1m or more"
        )


def prefix_end(prefix: str) -> str | None:
    """The least string greater than every string starting with ``prefix`` in code point
    order (PostgreSQL's "C" collation of UTF-8 text; Python's str order), or None when
    there is none: ``prefix <= s < prefix_end(prefix)`` is ``s.startswith(prefix)``."""
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code == 0xD800:  # surrogates are no text
            code = 0xE000
        if code <= 0x10FFFF:
            return "".join(chars) + chr(code)
    return None
