"""The audit log's merge across owners (services/query/audit.py) and the recorder's masking."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from services.core.errors import InvalidInput, NotFound, Unavailable
from services.infra.audit import caller_of, error_of, outcome_of
from services.query.audit import AuditLog, AuditView

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class FakeSource:
    def __init__(self, owner: str, times: list[int]) -> None:
        self.owner = owner
        self.views = [
            AuditView(
                owner, i + 1, T0 + timedelta(seconds=t), "s", f"{owner}-{i}", "a", "", {}, "OK", ""
            )
            for i, t in enumerate(times)
        ]

    async def records(
        self,
        since: datetime | None,
        until: datetime | None,
        after: tuple[datetime, int] | None,
        limit: int,
    ) -> list[AuditView]:
        out = [
            v
            for v in self.views
            if (since is None or v.at >= since)
            and (until is None or v.at < until)
            and (after is None or (v.at, v.seq) > after)
        ]
        return out[:limit]


def every_page(log: AuditLog, size: int, **kw: str) -> list[list[str]]:
    pages, token = [], ""
    while True:
        page, token = asyncio.run(log.page(kw.get("since", ""), kw.get("until", ""), size, token))
        pages.append([v.request_id for v in page])
        if not token:
            return pages


def test_pages_merge_owners_in_time_order_without_repeats_even_on_equal_times() -> None:
    # Equal times across owners and within one: (at, owner, seq) decides.
    log = AuditLog([FakeSource("eventhandler", [0, 1, 1, 3]), FakeSource("actions", [1, 1, 2])])
    want = ["actions-0", "actions-1", "eventhandler-1", "eventhandler-2", "actions-2"]
    for size in (1, 2, 3, 100):
        pages = every_page(log, size)
        flat = [r for p in pages for r in p]
        assert flat == ["eventhandler-0", *want, "eventhandler-3"], size
        assert all(len(p) <= size for p in pages)


def test_time_range_and_bad_input() -> None:
    log = AuditLog([FakeSource("eventhandler", [0, 1, 3]), FakeSource("actions", [2])])
    since, until = (T0 + timedelta(seconds=1)).isoformat(), (T0 + timedelta(seconds=3)).isoformat()
    assert every_page(log, 10, since=since, until=until) == [["eventhandler-1", "actions-0"]]
    for args, word in [
        (("yesterday", "", 10, ""), "RFC 3339"),
        (("2026-12-01T00:00:00", "", 10, ""), "time zone"),
        (("", "", 101, ""), "page_size"),
        (("", "", 10, "bogus!"), "page_token"),
        (("", "", 10, "WzEsMiwzXQ"), "page_token"),  # [1,2,3]
    ]:
        with pytest.raises(InvalidInput, match=word):
            asyncio.run(log.page(*args))


def test_caller_and_outcome() -> None:
    # (Masking of what changed uses the actions API's own masking: test_action_rules.)
    who = caller_of([("x-cj-subject", "alice"), ("x-request-id", "r1"), ("x-cj-subject", "m")])
    assert (who.subject, who.request_id) == ("alice", "r1")
    assert caller_of(None).request_id.startswith("local-")
    assert outcome_of(InvalidInput("x")) == "INVALID_ARGUMENT"
    assert outcome_of(RuntimeError("x")) == "INTERNAL"


def test_recorded_error_is_the_platforms_own_words_only() -> None:
    # InvalidInput/NotFound carry the platform's own message; anything else may carry a
    # driver's or library's text (hosts, URLs), so the record gets a generic text.
    assert error_of(InvalidInput("target.url is required")) == "target.url is required"
    assert error_of(NotFound("no rule r1")) == "no rule r1"
    assert error_of(InvalidInput("x" * 2000)) == "x" * 1000
    leaky = RuntimeError("connection to db.internal:5432 failed, password=hunter2")
    assert "db.internal" not in error_of(leaky)
    assert error_of(leaky) == error_of(RuntimeError("x")) != ""
    assert "10.0.0.7" not in error_of(Unavailable("broker at 10.0.0.7:9092 unavailable"))
    assert error_of(Unavailable("a")) == error_of(Unavailable("b")) != ""
    assert error_of(asyncio.CancelledError()) != ""
