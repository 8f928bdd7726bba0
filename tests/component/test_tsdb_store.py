"""The time-series adapters against real PostgreSQL: partitions made on demand and dropped by
retention, duplicate and late points, rollups equal to a recomputation, series reads."""

from __future__ import annotations

import dataclasses
import math
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import uuid_utils

from services.core.errors import Unavailable
from services.core.events import Event
from services.infra import migrations
from services.infra.postgres import open_pool
from services.tsdb.main import READ_SESSION
from services.tsdb.points_store import PostgresPointWriter, create_partitions, drop_expired
from services.tsdb.series import (
    Aggregate,
    SeriesQuery,
    days_ahead,
    floor_time,
    plan,
    points_of,
)
from services.tsdb.series_reader import PostgresSeriesReader, series_statement
from services.tsdb.service import MAX_LATEST, SeriesService, SeriesWriter, page_token
from tests.support import unique

pytestmark = pytest.mark.component

NOW = datetime(2026, 5, 8, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


@pytest.fixture(scope="module")
def db(database: str) -> str:
    migrations.apply(database, "tsdb")
    return database


def partitions(db: str, table: str) -> set[str]:
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            (f"tsdb.{table}",),
        ).fetchall()
    return {r[0] for r in rows}


def reading(device: str, t: datetime, **fields: object) -> Event:
    return Event(str(uuid_utils.uuid7()), "sensor.reading", device, t, t, dict(fields))


def stored(db: str, device: str) -> list[tuple[str, datetime, float, str]]:
    with psycopg.connect(db) as conn:
        return [
            (r[0], r[1], r[2], str(r[3]))
            for r in conn.execute(
                "SELECT metric, time, value, event_id FROM tsdb.points WHERE device = %s "
                "ORDER BY metric, time, event_id",
                (device,),
            ).fetchall()
        ]


def rollups(db: str, table: str, device: str) -> dict[tuple[str, datetime], Aggregate]:
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            f"SELECT metric, bucket, count, sum, min, max, first, last FROM tsdb.{table} "
            "WHERE device = %s",
            (device,),
        ).fetchall()
    return {(r[0], r[1]): Aggregate(r[2], float(r[3]), r[4], r[5], r[6], r[7]) for r in rows}


def recompute(db: str, device: str, step: timedelta) -> dict[tuple[str, datetime], Aggregate]:
    """The rollups computed directly from the stored points, in Python."""
    groups: dict[tuple[str, datetime], list[tuple[datetime, str, float]]] = {}
    for metric, t, v, eid in stored(db, device):
        groups.setdefault((metric, floor_time(t, step)), []).append((t, eid, v))
    return {k: Aggregate.of(v) for k, v in groups.items()}


def assert_rollups_exact(db: str, device: str) -> None:
    for table, step in (("rollup_1m", timedelta(minutes=1)), ("rollup_1h", timedelta(hours=1))):
        got, want = rollups(db, table, device), recompute(db, device, step)
        assert got.keys() == want.keys(), table
        for k in want:
            assert got[k].count == want[k].count, (table, k)
            assert got[k].sum == pytest.approx(want[k].sum), (table, k)
            assert (got[k].min, got[k].max, got[k].first, got[k].last) == (
                want[k].min,
                want[k].max,
                want[k].first,
                want[k].last,
            ), (table, k)


def test_partitions_are_made_ahead_and_on_demand(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        made = create_partitions(conn, days_ahead(NOW, 2))
        assert made == 9  # 3 days x points, rollup_1m, rollup_1h
        assert create_partitions(conn, days_ahead(NOW, 2)) == 0
    assert {"points_p20260508", "points_p20260509", "points_p20260510"} <= partitions(db, "points")
    # A late point (three days back) gets its day's partitions when it is written.
    writer = PostgresPointWriter(db)
    device = unique("dev")
    late = NOW - timedelta(days=3)
    assert (
        SeriesWriter(writer, WEEK.total_seconds())
        .handle([reading(device, late, temp=1.5)], NOW)
        .written
        == 1
    )
    assert "points_p20260505" in partitions(db, "points")
    assert "rollup_1h_p20260505" in partitions(db, "rollup_1h")
    writer.close()


def test_duplicate_delivery_stores_each_point_once_and_keeps_rollups(db: str) -> None:
    device = unique("dev")
    events = [
        reading(device, NOW + timedelta(seconds=7 * i), temp=20.0 + i, hum=40 - i, ok=True)
        for i in range(30)
    ]
    writer = PostgresPointWriter(db)
    core = SeriesWriter(writer, WEEK.total_seconds())
    first = core.handle(events, NOW)
    assert (first.points, first.written) == (60, 60)  # temp and hum; the boolean is no metric
    before = (rollups(db, "rollup_1m", device), rollups(db, "rollup_1h", device))
    # Delivered again, whole and in part, in another order and mixed with a new one.
    again = core.handle([*reversed(events), *events[:5]], NOW)
    assert again.written == 0
    assert (rollups(db, "rollup_1m", device), rollups(db, "rollup_1h", device)) == before
    assert len(stored(db, device)) == 60
    assert_rollups_exact(db, device)
    writer.close()


def test_late_and_shuffled_points_give_exact_rollups(db: str) -> None:
    device = unique("dev")
    rng = random.Random(17)
    events = [
        reading(device, NOW + timedelta(seconds=rng.randrange(0, 3 * 3600)), v=rng.uniform(-5, 5))
        for _ in range(400)
    ]
    # Two events at the very same time: first/last fall back to event_id.
    t = NOW + timedelta(minutes=5)
    events += [reading(device, t, v=100.0), reading(device, t, v=-100.0)]
    rng.shuffle(events)
    writer = PostgresPointWriter(db)
    core = SeriesWriter(writer, WEEK.total_seconds())
    for i in range(0, len(events), 37):  # many batches, late points all along
        core.handle(events[i : i + 37], NOW)
    assert len(stored(db, device)) == len(events)
    assert_rollups_exact(db, device)
    writer.close()


def test_points_past_retention_are_not_written(db: str) -> None:
    device = unique("dev")
    writer = PostgresPointWriter(db)
    out = SeriesWriter(writer, WEEK.total_seconds()).handle(
        [reading(device, NOW - timedelta(days=9), v=1.0), reading(device, NOW, v=2.0)], NOW
    )
    assert (out.too_old, out.written) == (1, 1)
    assert "points_p20260429" not in partitions(db, "points")
    writer.close()


def test_retention_drops_whole_partitions_only(db: str) -> None:
    device = unique("dev")
    writer = PostgresPointWriter(db)
    core = SeriesWriter(writer, 30 * 86400.0)
    old, kept = NOW - timedelta(days=8, hours=1), NOW - timedelta(days=6)
    core.handle([reading(device, old, v=1.0), reading(device, kept, v=2.0)], NOW)
    writer.close()
    with psycopg.connect(db, autocommit=True) as conn:
        dropped = drop_expired(conn, NOW, WEEK, timedelta(days=30))
    assert "points_p20260430" in dropped
    assert not any(n.startswith("rollup") for n in dropped)  # rollups keep 30 days
    assert [v for _, _, v, _ in stored(db, device)] == [2.0]
    assert len(rollups(db, "rollup_1h", device)) == 2


async def test_series_reads_match_a_direct_computation(db: str) -> None:
    device = unique("dev")
    rng = random.Random(5)
    start = NOW - timedelta(hours=5, minutes=3, seconds=11)
    events = [
        reading(device, start + timedelta(seconds=10 * i + rng.randrange(0, 10)), temp=rng.random())
        for i in range(5 * 360)
    ]
    writer = PostgresPointWriter(db)
    core = SeriesWriter(writer, WEEK.total_seconds())
    for i in range(0, len(events), 500):
        core.handle(events[i : i + 500], NOW)
    writer.close()
    points = [(e.event_time, e.event_id, float(e.payload["temp"])) for e in events]
    # The service's session (generic plans); each read runs 7 times, so from the 6th on it
    # is a prepared statement with a generic plan.
    async with open_pool(db, max_size=1, acquire_timeout=5, name="t", session=READ_SESSION) as pool:
        service = SeriesService(PostgresSeriesReader(pool), 10_000)
        # Unaligned range: raw edges + rollup middle; 1h, 5m, 1m and 10s buckets.
        q_from, q_to = start + timedelta(minutes=17, seconds=3), NOW - timedelta(seconds=41)
        for bucket, source in 7 * (
            (timedelta(hours=1), "1h"),
            (timedelta(minutes=5), "1m"),
            (timedelta(minutes=1), "1m"),
            (timedelta(seconds=10), "raw"),
        ):
            q = SeriesQuery(device, "temp", q_from, q_to, bucket)
            step = plan(q).rollup
            assert (
                "raw" if step is None else ("1h" if step == timedelta(hours=1) else "1m")
            ) == source
            got = (await service.buckets(q)).rows()
            want: dict[datetime, list[tuple[datetime, str, float]]] = {}
            for p in points:
                if q_from <= p[0] < q_to:
                    want.setdefault(floor_time(p[0], bucket), []).append(p)
            assert [b.start for b in got] == sorted(want), bucket
            for b in got:
                w = Aggregate.of(want[b.start])
                assert (b.agg.count, b.agg.min, b.agg.max, b.agg.first, b.agg.last) == (
                    w.count,
                    w.min,
                    w.max,
                    w.first,
                    w.last,
                ), (bucket, b.start)
                assert b.agg.sum == pytest.approx(w.sum)
            # Some aggregates only: the same buckets, only the columns they need.
            some = await service.buckets(
                dataclasses.replace(q, aggregates=frozenset({"max", "avg"}))
            )
            assert some.index == [int((b.start - some.origin) / bucket) for b in got]
            assert some.max == [b.agg.max for b in got]
            # The average is the answered float8 sum over the count, exactly.
            assert some.avg == [b.agg.sum / b.agg.count for b in got]
            assert some.avg == pytest.approx([Aggregate.of(want[b.start]).avg for b in got])
            assert some.count == some.sum == some.min == some.first == some.last == []
            # The chart's read: the average alone (the index and one column).
            avg = await service.buckets(dataclasses.replace(q, aggregates=frozenset({"avg"})))
            assert (avg.index, avg.avg) == (some.index, some.avg)
            assert avg.max == avg.count == avg.sum == []
        latest = await service.latest(device)
        newest = max(points)
        assert [(v.metric, v.time, v.value) for v in latest.values] == [
            ("temp", newest[0], newest[2])
        ]
        listed = await service.series(device, "", 10)
        assert [(s.device, s.metric) for s in listed] == [(device, "temp")]


async def test_a_huge_sum_refuses_no_point_and_reads_back(db: str) -> None:
    """Issue 17 review: 8e307 three times in an hour overflowed the float8 rollup sum, and the
    writer skipped the whole event (its normal temp point too). Sums are numeric now: every
    point is stored, and a day read over the hour rows answers (an infinite sum at worst)."""
    device = unique("dev")
    writer = PostgresPointWriter(db)
    core = SeriesWriter(writer, WEEK.total_seconds())
    big = 8.0e307
    outs = [
        core.handle([reading(device, NOW + timedelta(minutes=i), v=big, temp=21.5)], NOW)
        for i in range(3)
    ]
    # In one batch too (the batch's own sum of the new points must not overflow either).
    outs.append(
        core.handle(
            [reading(device, NOW + timedelta(minutes=10, seconds=i), v=big) for i in range(3)],
            NOW,
        )
    )
    writer.close()
    assert [o.refused for o in outs] == [0, 0, 0, 0]
    assert sum(o.written for o in outs) == 9
    assert len(stored(db, device)) == 9
    async with open_pool(db, max_size=2, acquire_timeout=5, name="t") as pool:
        service = SeriesService(PostgresSeriesReader(pool), 10_000)
        day = floor_time(NOW, timedelta(days=1))
        got = (
            await service.buckets(
                SeriesQuery(device, "v", day, day + timedelta(days=1), timedelta(days=1))
            )
        ).rows()
        assert [(b.agg.count, b.agg.max, b.agg.sum) for b in got] == [(6, big, math.inf)]
        minute = (
            await service.buckets(
                SeriesQuery(device, "temp", day, day + timedelta(days=1), timedelta(hours=1))
            )
        ).rows()
        assert [(b.agg.count, b.agg.sum) for b in minute] == [(3, 64.5)]
        # Rows read as they are stored (the bucket is the rollup's step) answer the float8
        # the rollup keeps beside the exact sum (tsdb/004): +Infinity past float8's range.
        for bucket, want in (
            (timedelta(hours=1), [(6, math.inf, math.inf)]),
            (
                timedelta(minutes=1),
                [(1, big, big), (1, big, big), (1, big, big), (3, math.inf, math.inf)],
            ),
        ):
            stored_rows = await service.buckets(
                SeriesQuery(device, "v", day, day + timedelta(days=1), bucket)
            )
            assert list(zip(stored_rows.count, stored_rows.sum, stored_rows.avg, strict=True)) == (
                want
            ), bucket


def _in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, dict[str, object]]:
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["value"] = fn()
        except Exception as e:  # handed to the test
            result["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, result


def test_a_reader_does_not_stall_partition_making_and_a_lock_is_bounded(db: str) -> None:
    """Issue 17 review: CREATE TABLE .. PARTITION OF took ACCESS EXCLUSIVE on the parent, so
    one open reader transaction stalled the writer (and every reader queued behind it).
    Partitions are attached now (SHARE UPDATE EXCLUSIVE) and the writer's sessions carry a
    lock_timeout: a lock it cannot get surfaces as Unavailable, and it succeeds after."""
    device = unique("dev")
    writer = PostgresPointWriter(db, lock_timeout=0.5)
    core = SeriesWriter(writer, WEEK.total_seconds())
    day = NOW + timedelta(days=40)  # a day no other test made
    with psycopg.connect(db) as reader:
        reader.execute("SELECT count(*) FROM tsdb.points WHERE device = 'nobody'")  # txn open
        t, result = _in_thread(lambda: core.handle([reading(device, day, v=1.0)], NOW))
        t.join(60)
        stalled = t.is_alive()
        reader.rollback()
    t.join(60)
    assert not stalled, "the writer waited for a reader to make a partition"
    assert getattr(result.get("value"), "written", None) == 1, result

    with psycopg.connect(db) as holder:
        holder.execute("LOCK TABLE tsdb.points IN SHARE MODE")  # blocks every insert
        t, result = _in_thread(lambda: writer.write(points_of(reading(device, day, w=2.0))))
        t.join(60)
        stalled = t.is_alive()
        holder.rollback()
    t.join(60)
    assert not stalled, "the writer waited for a lock without bound"
    assert isinstance(result.get("error"), Unavailable), result
    assert writer.write(points_of(reading(device, day, w=2.0))) == 1
    writer.close()


def test_retention_waits_for_no_reader_and_finishes_next_round(db: str) -> None:
    """Dropping goes DETACH .. CONCURRENTLY then DROP, with a lock_timeout: a reader keeps
    the expired day for a round (a transient error, retried), then it goes."""
    device = unique("dev")
    writer = PostgresPointWriter(db)
    old = NOW - timedelta(days=20)
    SeriesWriter(writer, 60 * 86400.0).handle([reading(device, old, v=1.0)], NOW)
    writer.close()
    name = f"points_p{old:%Y%m%d}"
    assert name in partitions(db, "points")
    with psycopg.connect(db) as reader:
        reader.execute("SELECT count(*) FROM tsdb.points WHERE device = %s", (device,))
        with psycopg.connect(db, autocommit=True) as conn:
            t, result = _in_thread(
                lambda: drop_expired(conn, NOW, WEEK, timedelta(days=60), lock_timeout=0.5)
            )
            t.join(60)
            stalled = t.is_alive()
            reader.rollback()
            t.join(60)
    assert not stalled, "retention waited for a reader without bound"
    assert isinstance(result.get("error"), psycopg.OperationalError), result
    with psycopg.connect(db, autocommit=True) as conn:
        assert name in drop_expired(conn, NOW, WEEK, timedelta(days=60))
    assert name not in partitions(db, "points")
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT to_regclass(%s)", (f"tsdb.{name}",)).fetchone() == (None,)


def test_a_day_dropped_by_retention_mid_write_is_too_old_not_an_outage(db: str) -> None:
    """Issue 17 review: retention dropped a day the writer knew of, between its check and
    its insert; the CheckViolation ("no partition found") was Unavailable forever. The
    writer forgets its partitions and retries once; the point of the expired day is
    counted too_old and skipped, the others are written, nothing is re-created."""
    device = unique("dev")
    writer = PostgresPointWriter(db)
    day = NOW - timedelta(days=50)  # a day no other test writes
    later = NOW + timedelta(days=1)  # retention's clock: day is past a 50-day retention, not at NOW
    keep = timedelta(days=50)
    core = SeriesWriter(writer, keep.total_seconds(), clock=lambda: later)
    assert core.handle([reading(device, day, v=1.0)], NOW).written == 1  # day known now
    name = f"points_p{day:%Y%m%d}"
    with psycopg.connect(db, autocommit=True) as conn:
        assert name in drop_expired(conn, later, keep, keep)
    out = core.handle(
        [reading(device, day + timedelta(hours=1), v=2.0), reading(device, NOW, v=3.0)], NOW
    )
    assert (out.too_old, out.written, out.refused) == (1, 1, 0)
    assert name not in partitions(db, "points")
    assert [v for _, _, v, _ in stored(db, device)] == [3.0]
    writer.close()


def test_another_check_violation_is_poison_not_an_outage(db: str) -> None:
    """Any CheckViolation but a missing partition is the row's own fault: the point is
    refused (skipped, counted) and the rest of the batch is written; no endless retry."""
    device = unique("dev")
    day = NOW + timedelta(days=77)  # a day no other test writes
    with psycopg.connect(db, autocommit=True) as conn:
        create_partitions(conn, [day.date()])
        conn.execute(
            f"ALTER TABLE tsdb.points_p{day:%Y%m%d} ADD CONSTRAINT no_13 CHECK (value <> 13)"
        )
    writer = PostgresPointWriter(db)
    out = SeriesWriter(writer, WEEK.total_seconds()).handle(
        [reading(device, day, v=13.0), reading(device, day, v=14.0)], NOW
    )
    assert (out.refused, out.written) == (1, 1)
    assert [v for _, _, v, _ in stored(db, device)] == [14.0]
    writer.close()


async def test_latest_values_are_bounded_and_say_when_truncated(db: str) -> None:
    """Issue 17 review: GetLatest read every metric of a device, unbounded. It answers the
    first MAX_LATEST metrics by name and says when there are more."""
    device = unique("dev")
    one = unique("dev")
    writer = PostgresPointWriter(db)
    fields = {f"m{i:05d}": float(i) for i in range(MAX_LATEST + 1)}
    out = SeriesWriter(writer, WEEK.total_seconds()).handle(
        [reading(device, NOW, **fields), reading(one, NOW, v=1.0)], NOW
    )
    assert out.written == MAX_LATEST + 2
    writer.close()
    async with open_pool(db, max_size=2, acquire_timeout=5, name="t") as pool:
        service = SeriesService(PostgresSeriesReader(pool), 10_000)
        got = await service.latest(device)
        assert got.truncated
        assert [v.metric for v in got.values] == sorted(fields)[:MAX_LATEST]
        small = await service.latest(one)
        assert not small.truncated and [v.metric for v in small.values] == ["v"]


def _scan_of(db: str, table: str, sql: str, params: tuple[object, ...]) -> dict[str, Any]:
    """The plan node (EXPLAIN ANALYZE) that reads ``table`` for the statement, planned as
    the service runs it after a few calls: prepared, with a generic plan (the parameters'
    values unknown to the planner)."""
    parts = sql.split("%s")
    numbered = parts[0] + "".join(f"${i}{rest}" for i, rest in enumerate(parts[1:], 1))
    with psycopg.connect(db) as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute("PREPARE listing AS " + numbered)
        cur = psycopg.ClientCursor(conn)
        cur.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE listing("
            + ", ".join(["%s"] * len(params))
            + ")",
            params,
        )
        row = cur.fetchone()
    assert row is not None
    nodes = [row[0][0]["Plan"]]
    while nodes:
        node = nodes.pop()
        if node.get("Relation Name") == table:
            return dict(node)
        nodes.extend(node.get("Plans", []))
    raise AssertionError(f"no scan of {table} in the plan")


async def test_listing_series_by_prefix_seeks_the_prefix_in_the_index(db: str) -> None:
    """ListSeries with a device prefix read the latest table from the page token on and
    filtered by the prefix: a prefix sorting late scanned every series before it (and every
    one after it when the page was not full). It reads the prefix's index range only."""
    run = unique("ls")
    with psycopg.connect(db) as conn:
        for part in ("a", "c"):  # 3,000 series sorting before the prefix, 3,000 after
            conn.execute(
                "INSERT INTO tsdb.latest (device, metric, time, value, event_id) "
                "SELECT %s || lpad(i::text, 5, '0'), 'v', now(), i, gen_random_uuid() "
                "FROM generate_series(1, 3000) i",
                (f"{run}-{part}-",),
            )
        wanted = [(f"{run}-b-{d}", m) for d in (1, 2) for m in ("t", "v")]
        for device, metric in wanted:
            conn.execute(
                "INSERT INTO tsdb.latest (device, metric, time, value, event_id) "
                "VALUES (%s, %s, now(), 1, gen_random_uuid())",
                (device, metric),
            )
        conn.execute("ANALYZE tsdb.latest")
    prefix = f"{run}-b-"
    async with open_pool(db, max_size=2, acquire_timeout=5, name="t") as pool:
        service = SeriesService(PostgresSeriesReader(pool), 10_000)
        first = await service.series(prefix, "", 3)
        assert [(s.device, s.metric) for s in first] == wanted[:3]
        rest = await service.series(prefix, page_token(first[-1]), 3)
        assert [(s.device, s.metric) for s in rest] == wanted[3:]
        assert [(s.device, s.metric) for s in await service.series(run, "", 5)] == [
            (f"{run}-a-{i:05d}", "v") for i in range(1, 6)
        ]
    for after in (("", ""), wanted[1]):
        scan = _scan_of(db, "latest", *series_statement(prefix, after, 10))
        assert scan["Node Type"] in ("Index Scan", "Index Only Scan"), scan
        assert scan.get("Rows Removed by Filter", 0) == 0, scan
        assert scan["Actual Rows"] == len(wanted) - (after != ("", "")) * 2, scan
