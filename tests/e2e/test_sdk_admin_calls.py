"""The Python SDK's typed calls for rules, deliveries, breakers, dead letters and stats (issue
19), sync and asyncio, against the whole stack through Envoy: plain results (datetimes,
dicts, lists) and the SDK's exceptions; a read-only token is refused the admin calls."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import uuid_utils
from cornjacket_sdk import AsyncClient, Client, InvalidArgument, NotFound, PermissionDenied, event

from services.cli.stack import Stack
from services.core.events import Event
from services.infra.codec import encode_event
from tests.support import eventually, token, unique
from tests.webhook_receiver import Receiver, Reply, receiver

pytestmark = pytest.mark.e2e

Log = list[tuple[str, str, str, bool]]


@pytest.fixture(scope="module")
def hooks() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


@pytest.fixture(scope="module")
def cj(stack: Stack) -> Iterator[Client]:
    with Client(f"127.0.0.1:{stack.settings.edge_port}", token=stack.admin_token) as c:
        yield c


def dead_letter(stack: Stack) -> str:
    """A poison event as the event handler leaves it (its DLQ row)."""
    now = datetime.now(UTC)
    ev = Event(str(uuid_utils.uuid7()), "sensor.reading", unique("sdk-dlq"), now, now, {"v": 1})
    with psycopg.connect(stack.postgres.url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO eventhandler.dlq (consumer, event_id, event_payload, error_message) "
            "VALUES ('event-handler', %s, %s, 'sdk test') RETURNING dlq_id::text",
            (ev.event_id, encode_event(ev)),
        ).fetchone()
    assert row is not None
    return str(row[0])


def test_rules_round_trip_as_plain_objects(cj: Client, hooks: Receiver) -> None:
    kind = unique("sdkrule").replace("-", "_")
    rule = cj.create_rule(
        "sdk rule",
        f"{kind}.*",
        hooks.url("/rules"),
        condition="payload.value > 5",
        headers={"x-team": "ops"},
    )
    assert rule.enabled and rule.generated_secret.startswith("whsec_")
    assert isinstance(rule.created_at, datetime) and rule.created_at.tzinfo is not None
    assert list(rule.target.headers) == ["x-team"], "a dict (values are masked)"
    assert rule.target.url == hooks.url("/rules")

    got = cj.get_rule(rule.rule_id)
    assert got.rule_id == rule.rule_id and got.generated_secret == ""
    page = cj.list_rules(limit=100)
    assert isinstance(page.rules, list) and page.total >= 1 and page.limit == 100

    changed = cj.update_rule(rule.rule_id, name="renamed", condition="payload.value > 7")
    assert (changed.name, changed.condition) == ("renamed", "payload.value > 7")
    assert changed.target.url == hooks.url("/rules"), "no url given: the target stays"
    off = cj.disable_rule(rule.rule_id, reason="sdk test")
    assert not off.enabled and off.disabled_reason == "sdk test"
    assert cj.enable_rule(rule.rule_id).enabled

    hit = cj.test_rule(f"{kind}.reading", {"value": 9}, rule_id=rule.rule_id)
    assert (hit.matched, hit.pattern_matched, hit.condition_matched) == (True, True, True)
    miss = cj.test_rule(f"{kind}.reading", {"value": 1}, rule_id=rule.rule_id)
    assert (miss.matched, miss.pattern_matched, miss.condition_matched) == (False, True, False)
    inline = cj.test_rule(
        "other.kind", {"unit": "C"}, event_type_pattern="sensor.*", condition='payload.unit == "C"'
    )
    assert (inline.matched, inline.pattern_matched, inline.condition_matched) == (
        False,
        False,
        True,
    )
    with pytest.raises(InvalidArgument) as bad:
        cj.test_rule("sensor.reading", {}, event_type_pattern="sensor.*", condition="payload. >")
    assert "position" in bad.value.message or "column" in bad.value.message, bad.value.message

    cj.delete_rule(rule.rule_id)
    with pytest.raises(NotFound):
        cj.get_rule(rule.rule_id)


def test_deliveries_replay_discard_and_breakers(stack: Stack, cj: Client, hooks: Receiver) -> None:
    path = f"/{unique('fail')}"
    hooks.script(path, default=Reply(400))
    kind = unique("sdkdel").replace("-", "_")
    rule = cj.create_rule("sdk failing", f"{kind}.reading", hooks.url(path))
    accepted = cj.ingest(event(f"{kind}.reading", unique("dev"), {"value": 1}))

    def failed() -> Any:
        page = cj.list_deliveries(rule_id=rule.rule_id, status="failed")
        return page if page.deliveries else None

    page = eventually(failed, timeout=60, what="a failed delivery")
    assert page.total == 1 and isinstance(page.deliveries, list)
    delivery = cj.get_delivery(page.deliveries[0].delivery_id)
    assert delivery.event_id == accepted.event_id and delivery.status == "failed"
    assert delivery.attempts and isinstance(delivery.attempts[0].started_at, datetime)
    assert delivery.attempts[0].status_code == 400
    by_event = cj.list_deliveries(event_id=accepted.event_id)
    assert [d.delivery_id for d in by_event.deliveries] == [delivery.delivery_id]

    replayed = cj.replay_deliveries([delivery.delivery_id])
    assert replayed.replayed == 1 and replayed.delivery_ids == [delivery.delivery_id]
    eventually(
        lambda: (
            cj.get_delivery(delivery.delivery_id).replay_count == 1
            and cj.get_delivery(delivery.delivery_id).status == "failed"
        ),
        timeout=60,
        what="the replayed delivery failed again",
    )
    discarded = cj.discard_delivery(delivery.delivery_id)
    assert discarded.status == "discarded"

    breakers = cj.list_breakers()
    assert isinstance(breakers, list)
    ours = [b for b in breakers if b.endpoint == f"http://127.0.0.1:{hooks.port}"]
    assert ours and isinstance(ours[0].updated_at, datetime) and ours[0].consecutive_failures >= 1
    cj.delete_rule(rule.rule_id)


def test_dead_letters_get_replay_discard(stack: Stack, cj: Client) -> None:
    first, second, third = dead_letter(stack), dead_letter(stack), dead_letter(stack)
    letter = cj.get_dead_letter(first)
    assert letter.status == "pending" and letter.consumer == "event-handler"
    assert isinstance(letter.failed_at, datetime) and letter.failed_at.tzinfo is not None
    pending = cj.list_dead_letters(status="pending", limit=100)
    assert {first, second} <= {d.dlq_id for d in pending.dead_letters}

    replayed = cj.replay_dead_letters([first])
    assert replayed.replayed == 1 and [o.dlq_id for o in replayed.outcomes] == [first]
    discarded = cj.discard_dead_letters([second, third])
    assert discarded.discarded == 2
    assert {o.status for o in discarded.outcomes} == {"discarded"}
    assert cj.get_dead_letter(second).status == "discarded"
    with pytest.raises(InvalidArgument):
        cj.get_dead_letter("not-a-uuid")


def test_stats_are_plain(cj: Client) -> None:
    stats = cj.get_stats()
    assert isinstance(stats.measured_at, datetime) and stats.measured_at.tzinfo is not None
    assert isinstance(stats.consumer_lag, list) and isinstance(stats.unavailable, list)
    assert stats.accepted_last_minute >= 0 and stats.outbox_depth >= 0


def test_async_client_has_the_same_calls(stack: Stack, hooks: Receiver) -> None:
    async def main() -> None:
        target = f"127.0.0.1:{stack.settings.edge_port}"
        async with AsyncClient(target, token=stack.admin_token) as ac:
            kind = unique("sdkaio").replace("-", "_")
            rule = await ac.create_rule("aio", f"{kind}.*", hooks.url("/aio"), enabled=False)
            assert not rule.enabled and isinstance(rule.updated_at, datetime)
            assert (await ac.get_rule(rule.rule_id)).name == "aio"
            assert (await ac.update_rule(rule.rule_id, name="aio2")).name == "aio2"
            assert (await ac.enable_rule(rule.rule_id)).enabled
            assert not (await ac.disable_rule(rule.rule_id)).enabled
            assert (await ac.test_rule(f"{kind}.x", {}, rule_id=rule.rule_id)).matched
            assert (await ac.list_rules(limit=100)).total >= 1
            page = await ac.list_deliveries(rule_id=rule.rule_id)
            assert page.deliveries == [] and page.total == 0
            assert isinstance(await ac.list_breakers(), list)
            await ac.delete_rule(rule.rule_id)
            with pytest.raises(NotFound):
                await ac.get_rule(rule.rule_id)
            with pytest.raises(NotFound):
                await ac.get_delivery(str(uuid_utils.uuid7()))

            letters = [dead_letter(stack), dead_letter(stack)]
            assert isinstance((await ac.get_dead_letter(letters[0])).failed_at, datetime)
            assert (await ac.replay_dead_letters(letters[:1])).replayed == 1
            assert (await ac.discard_dead_letters(letters[1:])).discarded == 1
            assert (await ac.list_dead_letters(status="discarded", limit=100)).total >= 1
            assert isinstance((await ac.get_stats()).measured_at, datetime)

    asyncio.run(main())


def test_read_token_is_refused_admin_calls(stack: Stack, attack_log: Log) -> None:
    target = f"127.0.0.1:{stack.settings.edge_port}"
    with Client(target, token=token(stack, "read")) as reader:
        assert isinstance(reader.get_stats().measured_at, datetime), "stats need only read"
        calls = {
            "create_rule": lambda: reader.create_rule("x", "sensor.*", "http://127.0.0.1:9/"),
            "test_rule": lambda: reader.test_rule("sensor.reading", {}, event_type_pattern="*"),
            "list_deliveries": lambda: reader.list_deliveries(),
            "list_breakers": lambda: reader.list_breakers(),
            "replay_dead_letters": lambda: reader.replay_dead_letters([dead_letter(stack)]),
        }
        for name, call in calls.items():
            try:
                call()
                got = "accepted"
            except PermissionDenied:
                got = "PermissionDenied"
            attack_log.append(
                (f"SDK {name} with a read-only token", "PermissionDenied", got, got != "accepted")
            )
            assert got == "PermissionDenied", name

    async def aio() -> None:
        async with AsyncClient(target, token=token(stack, "read")) as reader:
            with pytest.raises(PermissionDenied):
                await reader.discard_dead_letters([dead_letter(stack)])

    asyncio.run(aio())


TS_SDK = Path(__file__).resolve().parents[2] / "sdk" / "typescript"


def test_typescript_sdk_admin_helpers_answer_plain(stack: Stack) -> None:
    """sdk/typescript/test/admin.mjs (built by `make sdk-ts`): the same calls from TypeScript."""
    node = shutil.which("node")
    if node is None or not (TS_SDK / "dist" / "index.js").exists():
        pytest.fail("the TypeScript SDK is not built: run `make sdk-ts` (make test does)")
    done = subprocess.run(
        [node, "test/admin.mjs"],
        cwd=TS_SDK,
        env={
            "CORNJACKET_URL": stack.edge_url,
            "CORNJACKET_TOKEN": stack.admin_token,
            "READ_TOKEN": token(stack, "read"),
            "DLQ_IDS": f"{dead_letter(stack)},{dead_letter(stack)}",
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"ok": True}
