"""The overview's figures (issue 19): gathered from the owners, cached, partial on outage."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from services.core.errors import Unavailable
from services.query.stats import GroupLagView, IngestFigures, StatsService


class Clock:
    def __init__(self) -> None:
        self.t = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.t


class Ingest:
    def __init__(self) -> None:
        self.calls = 0
        self.down = False
        self.gate: asyncio.Event | None = None

    async def figures(self) -> IngestFigures:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise Unavailable("ingestion at 127.0.0.1:1: UNAVAILABLE")
        return IngestFigures(accepted_last_minute=120 * self.calls, outbox_depth=3)


class Count:
    def __init__(self, n: int, down: bool = False) -> None:
        self.n = n
        self.down = down

    async def count(self) -> int:
        if self.down:
            raise Unavailable("down")
        return self.n


class Lag:
    async def lags(self) -> list[GroupLagView]:
        return [GroupLagView("event-handler", 5), GroupLagView("tsdb-writer", None)]


def service(ingest: Ingest, clock: Clock, *, dlq_down: bool = False) -> StatsService:
    return StatsService(
        ingest,
        {
            "dead_letters_pending": ("eventhandler", Count(2, down=dlq_down)),
            "deliveries_failed": ("actions", Count(7)),
        },
        Lag(),
        clock,
        max_age=1.0,
    )


def test_figures_are_gathered_and_reused_for_max_age() -> None:
    async def scenario() -> None:
        ingest, clock = Ingest(), Clock()
        svc = service(ingest, clock)
        first = await svc.stats()
        assert (first.ingest.accepted_last_minute, first.ingest_rate) == (120, 2.0)
        assert (first.dead_letters_pending, first.deliveries_failed) == (2, 7)
        assert first.consumer_lag[1] == GroupLagView("tsdb-writer", None)
        assert first.unavailable == []
        clock.t += timedelta(milliseconds=999)
        assert (await svc.stats()) is first and ingest.calls == 1
        clock.t += timedelta(milliseconds=1)
        assert (await svc.stats()).ingest.accepted_last_minute == 240

    asyncio.run(scenario())


def test_concurrent_callers_share_one_gathering() -> None:
    async def scenario() -> None:
        ingest, clock = Ingest(), Clock()
        ingest.gate = asyncio.Event()
        svc = service(ingest, clock)
        callers = [asyncio.create_task(svc.stats()) for _ in range(50)]
        ingest.gate.set()
        results = await asyncio.gather(*callers)
        assert ingest.calls == 1
        assert all(r is results[0] for r in results)

    asyncio.run(scenario())


def test_an_owner_that_does_not_answer_is_named_and_the_rest_is_answered() -> None:
    async def scenario() -> None:
        ingest, clock = Ingest(), Clock()
        ingest.down = True
        s = await service(ingest, clock, dlq_down=True).stats()
        assert s.unavailable == ["eventhandler", "ingestion"]
        assert s.ingest == IngestFigures()
        assert (s.dead_letters_pending, s.deliveries_failed) == (0, 7)

    asyncio.run(scenario())


def test_a_bug_is_not_hidden_as_an_outage() -> None:
    class Broken(Ingest):
        async def figures(self) -> IngestFigures:
            raise KeyError("accepted")

    with pytest.raises(KeyError):
        asyncio.run(service(Broken(), Clock()).stats())


def test_settings_name_the_groups_and_refuse_a_bad_cache() -> None:
    from services.config.settings import Env, QuerySettings
    from services.core.errors import ConfigError

    s = QuerySettings.from_env(Env({}))
    assert s.stats_cache == 1.0
    every = ("sensor-events", "user-actions", "system-events")
    assert s.stats_groups == (
        ("event-handler", every),
        ("action-orchestrator", every),
        ("tsdb-writer", ("sensor-events",)),
        ("ai-inference", ("sensor-events",)),
    )
    off = QuerySettings.from_env(
        Env(
            {
                "CJ_FEATURE_TSDB": "false",
                "CJ_FEATURE_INFERENCE": "false",
                "CJ_EVENTHANDLER_CONSUMER_GROUP": "eh-2",
                "CJ_QUERY_STATS_CACHE": "250ms",
            }
        )
    )
    assert [g for g, _ in off.stats_groups] == ["eh-2", "action-orchestrator"]
    assert off.stats_cache == 0.25
    for bad in ("soon", "10ms"):
        with pytest.raises(ConfigError, match=f"CJ_QUERY_STATS_CACHE.*{bad}"):
            QuerySettings.from_env(Env({"CJ_QUERY_STATS_CACHE": bad}))
