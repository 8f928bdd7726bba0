from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from services.core.errors import InvalidInput, NotFound
from services.query.service import ProjectionView, QueryService, Views

T = datetime(2026, 1, 1, tzinfo=UTC)


class Reader:
    def __init__(self) -> None:
        self.views = {
            ("sensor_state", f"d{i}"): ProjectionView(
                f"p{i}", "sensor_state", f"d{i}", {}, f"e{i}", T, T
            )
            for i in range(5)
        }

    async def get(self, projection_type: str, aggregate_id: str) -> ProjectionView | None:
        return self.views.get((projection_type, aggregate_id))

    async def list(
        self, projection_type: str, limit: int, offset: int
    ) -> tuple[list[ProjectionView], int]:
        rows = sorted(
            (v for (t, _), v in self.views.items() if t == projection_type),
            key=lambda v: v.aggregate_id,
        )
        return rows[offset : offset + limit], len(rows)

    async def get_many(self, projection_type: str, ids: Sequence[str]) -> Views:
        return [v for (t, a), v in self.views.items() if t == projection_type and a in ids]

    async def list_after(self, projection_type: str, after: str, limit: int) -> Views:
        rows, _ = await self.list(projection_type, len(self.views), 0)
        return [v for v in rows if v.aggregate_id > after][:limit]


async def test_get_and_not_found() -> None:
    svc = QueryService(Reader())
    assert (await svc.get("sensor_state", "d1")).projection_id == "p1"
    with pytest.raises(NotFound, match="no sensor_state projection for aggregate 'zz'"):
        await svc.get("sensor_state", "zz")


async def test_list_defaults_and_pages() -> None:
    svc = QueryService(Reader())
    page = await svc.list("sensor_state", None, 0)
    assert (page.limit, page.offset, page.total, len(page.items)) == (20, 0, 5, 5)
    page = await svc.list("sensor_state", 2, 4)
    assert [v.aggregate_id for v in page.items] == ["d4"] and page.total == 5


@pytest.mark.parametrize(
    ("ptype", "limit", "offset", "message"),
    [
        ("sensor_state", 0, 0, "limit must be between 1 and 100, got 0"),
        ("sensor_state", 101, 0, "limit must be between 1 and 100"),
        ("sensor_state", 10, -1, "offset must be 0 or more"),
        ("Bad-Type", 10, 0, "projection_type"),
        ("", 10, 0, "projection_type is required"),
    ],
)
async def test_list_validation(ptype: str, limit: int, offset: int, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        await QueryService(Reader()).list(ptype, limit, offset)


def _health(at: datetime) -> ProjectionView:
    state = {"status": "anomalous", "last_anomaly_at": at.isoformat(), "anomalies_24h": 1}
    return ProjectionView("p", "device_health", "dev-1", state, "e", at, at)


async def test_device_health_turns_back_to_ok_by_itself_after_the_window() -> None:
    """issue 18: a device is anomalous only while its last anomaly is within the window
    (CJ_QUERY_DEVICE_HEALTH_WINDOW); computed at read time, on get and list."""
    from datetime import timedelta

    from services.core.clock import FixedClock

    reader = Reader()
    reader.views[("device_health", "dev-1")] = _health(T)
    clock = FixedClock(T + timedelta(minutes=14))
    svc = QueryService(reader, clock=clock, health_window=timedelta(minutes=15))
    assert (await svc.get("device_health", "dev-1")).state["status"] == "anomalous"
    clock.advance(timedelta(minutes=2))
    view = await svc.get("device_health", "dev-1")
    assert view.state["status"] == "ok" and view.state["last_anomaly_at"] == T.isoformat()
    assert [v.state["status"] for v in (await svc.list("device_health", 10, 0)).items] == ["ok"]
    # other projections are untouched
    assert (await svc.get("sensor_state", "d1")).state == {}


async def test_device_health_anomalies_24h_reads_zero_once_the_last_anomaly_is_a_day_old() -> None:
    """anomalies_24h counted the 24 h up to the last anomaly and stayed frozen there
    (issue 18 review, 7): read at query time, it is 0 once that anomaly is 24 h old."""
    from datetime import timedelta

    from services.core.clock import FixedClock

    reader = Reader()
    reader.views[("device_health", "dev-1")] = _health(T)
    clock = FixedClock(T + timedelta(hours=23, minutes=59))
    svc = QueryService(reader, clock=clock, health_window=timedelta(minutes=15))
    assert (await svc.get("device_health", "dev-1")).state["anomalies_24h"] == 1
    clock.advance(timedelta(minutes=2))
    view = await svc.get("device_health", "dev-1")
    assert view.state["anomalies_24h"] == 0 and view.state["status"] == "ok"
