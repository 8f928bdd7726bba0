"""The series list through Envoy with prefixes chosen to break a prefix seek: LIKE wildcards,
the last code point, NUL, a prefix sorting after thousands of series asked again and again
(the prepared statement's generic plan). Each answer holds exactly the series whose device
starts with the prefix, as written; rows in the attack table."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import psycopg
import pytest

from services.cli.stack import Stack
from tests.support import unique

pytestmark = pytest.mark.e2e

Log = list[tuple[str, str, str, bool]]


def add_series(stack: Stack, devices: list[str]) -> None:
    with psycopg.connect(stack.postgres.url) as conn:
        conn.execute(
            "INSERT INTO tsdb.latest (device, metric, time, value, event_id) "
            "SELECT d, 'v', now(), 1, gen_random_uuid() FROM unnest(%s::text[]) d",
            (devices,),
        )


def listed(http: httpx.Client, prefix: str, **params: str) -> httpx.Response:
    return http.get("/api/v1/series", params={"device_prefix": prefix, **params})


def test_series_list_prefix_attacks(stack: Stack, http: httpx.Client, attack_log: Log) -> None:
    run = unique("lst")
    last = "\U0010ffff"
    devices = [
        f"{run}-a%",
        f"{run}-ab",
        f"{run}-a_c",
        f"{run}-axc",
        f"{last}{run}",
        f"{last}{last}{run}",
        *(f"{run}-m-{i:04d}" for i in range(3000)),
        f"{run}-z-1",
        f"{run}-z-2",
    ]
    add_series(stack, devices)

    def devices_of(r: httpx.Response) -> list[str]:
        return [s["device"] for s in r.json()["series"]]

    attacks: list[tuple[str, Callable[[], httpx.Response], list[str] | None, int]] = [
        ("LIKE wildcard % in the prefix", lambda: listed(http, f"{run}-a%"), [f"{run}-a%"], 200),
        ("LIKE wildcard _ in the prefix", lambda: listed(http, f"{run}-a_"), [f"{run}-a_c"], 200),
        (
            "prefix of the last code point (no upper bound)",
            lambda: listed(http, last + last),
            [f"{last}{last}{run}"],
            200,
        ),
        ("NUL in the prefix", lambda: listed(http, f"{run}\x00"), None, 400),
        (
            "page token past the prefix's range",
            lambda: listed(http, f"{run}-z-", page_token=f"{run}-z-9\x1fv"),
            [],
            200,
        ),
    ]
    # Seven times: from the sixth call on the statement is prepared with a generic plan.
    for i in range(7):
        attacks.append(
            (
                f"prefix sorting after 3,000 series, call {i + 1} of 7",
                lambda: listed(http, f"{run}-z-"),
                [f"{run}-z-1", f"{run}-z-2"],
                200,
            )
        )
    failures = []
    for name, call, want, status in attacks:
        r = call()
        got = devices_of(r) if r.status_code == 200 else r.text[:120]
        ok = r.status_code == status and (want is None or got == want)
        attack_log.append(
            (
                f"tsdb list: {name}",
                f"{status} {want if want is not None else ''}".strip(),
                f"{r.status_code} {got if r.status_code == 200 else ''}".strip(),
                ok,
            )
        )
        if not ok:
            failures.append((name, r.status_code, got))
    assert not failures
    assert http.get("/health").status_code == 200
