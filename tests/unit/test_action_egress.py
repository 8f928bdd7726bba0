"""Egress: webhook targets that are, or resolve to, non-public addresses are refused unless
allow-listed, and the HTTP client connects to the very address that was checked.

No test here connects anywhere but to a local receiver on 127.0.0.1: where an address
outside this machine is "connected to", the network backend only records it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import httpcore
import pytest

from services.actions import policy as pol
from services.actions import rules as r
from services.actions.delivery import (
    BlockedTarget,
    HttpxSender,
    ResolutionFailed,
    ResolutionTimeout,
    ResolvingGuard,
)
from services.config.settings import ActionsSettings, Env
from services.core.errors import ConfigError, InvalidInput
from tests.webhook_receiver import Receiver, Reply, receiver

PUBLIC = "93.184.216.34"  # never connected to: the recording backend stands in


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    with receiver() as rx:
        yield rx


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.1.2.3",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",  # shared address space (carrier-grade NAT): not public
        "169.254.169.254",  # cloud metadata
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fc00::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "ff02::1",
    ],
)
def test_non_public_addresses_are_forbidden(address: str) -> None:
    assert r.forbidden_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", [PUBLIC, "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_not_forbidden(address: str) -> None:
    assert not r.forbidden_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "100.64.0.1",
        "[::ffff:127.0.0.1]",
        "[fc00::1]",
        "[::1]",
        "0.0.0.0",
        "localhost",
        "localhost.",
        "api.localhost",
    ],
)
def test_saving_a_rule_with_a_forbidden_literal_target_is_refused_clearly(host: str) -> None:
    with pytest.raises(InvalidInput, match="forbidden"):
        r.validate_url(f"http://{host}:9901/quitquitquit", block_private=True)


@pytest.mark.parametrize("host", ["2130706433", "0177.0.0.1", "0x7f.1", "017700000001"])
def test_other_spellings_of_loopback_are_refused_at_save(host: str) -> None:
    with pytest.raises(InvalidInput, match="not a valid host"):
        r.validate_url(f"http://{host}/x", block_private=True)


def test_the_allow_list_admits_named_hosts_and_ranges_only() -> None:
    allow = r.AllowList.parse(["127.0.0.1", "10.1.0.0/16", "hooks.internal", "[fd00::5]"])
    for url in (
        "http://127.0.0.1:8080/x",
        "http://10.1.2.3/x",
        "http://hooks.internal/x",
        "http://[fd00::5]/x",
    ):
        assert r.validate_url(url, block_private=True, allow=allow) == url
    for url in ("http://127.0.0.2/x", "http://10.2.0.1/x", "http://localhost/x"):
        with pytest.raises(InvalidInput, match="forbidden"):
            r.validate_url(url, block_private=True, allow=allow)


def test_the_allow_list_setting_is_checked_and_blocking_is_on_by_default() -> None:
    s = ActionsSettings.from_env(Env({}))
    assert s.block_private_targets is True and s.allowed_targets == ()
    s = ActionsSettings.from_env(
        Env({"CJ_ACTIONS_ALLOWED_TARGETS": "127.0.0.1, 10.0.0.0/8,hooks.internal,[::1]"})
    )
    assert s.allowed_targets == ("127.0.0.1", "10.0.0.0/8", "hooks.internal", "::1")
    for bad in ("http://x/", "10.0.0.0/33", "a b", "1.2.3"):
        with pytest.raises(ConfigError, match="CJ_ACTIONS_ALLOWED_TARGETS"):
            ActionsSettings.from_env(Env({"CJ_ACTIONS_ALLOWED_TARGETS": bad}))


def resolver(*answers: list[str]) -> tuple[Any, list[str]]:
    """A resolver that gives ``answers`` in turn (the last one from then on)."""
    asked: list[str] = []

    async def resolve(host: str) -> list[str]:
        asked.append(host)
        return answers[min(len(asked), len(answers)) - 1]

    return resolve, asked


async def test_a_name_resolving_to_loopback_is_blocked_unless_allow_listed() -> None:
    resolve, _ = resolver(["127.0.0.1"])
    with pytest.raises(BlockedTarget, match="resolves to 127.0.0.1"):
        await ResolvingGuard(resolve=resolve).addresses("evil.example")
    with pytest.raises(InvalidInput, match="resolves to 127.0.0.1"):
        await ResolvingGuard(resolve=resolve).check("http://evil.example/x")
    by_name = ResolvingGuard(resolve=resolve, allow=r.AllowList.parse(["evil.example"]))
    assert await by_name.addresses("evil.example") == ["127.0.0.1"]
    by_range = ResolvingGuard(resolve=resolve, allow=r.AllowList.parse(["127.0.0.0/8"]))
    assert await by_range.addresses("evil.example") == ["127.0.0.1"]


async def test_one_forbidden_answer_among_public_ones_blocks() -> None:
    resolve, _ = resolver([PUBLIC, "10.0.0.1"])
    with pytest.raises(BlockedTarget, match="10.0.0.1"):
        await ResolvingGuard(resolve=resolve).addresses("mixed.example")


async def test_a_failed_lookup_is_refused_at_delivery() -> None:
    async def fail(host: str) -> list[str]:
        raise OSError("Name or service not known")

    guard = ResolvingGuard(resolve=fail)
    with pytest.raises(ResolutionFailed, match="did not resolve"):
        await guard.addresses("nowhere.example")
    await guard.check("http://nowhere.example/x")  # at save it passes: delivery checks again


async def test_a_lookup_that_hangs_is_bounded() -> None:
    import asyncio

    never = asyncio.Event()

    async def hang(host: str) -> list[str]:
        await never.wait()
        return []

    with pytest.raises(ResolutionTimeout, match="did not resolve within"):
        await ResolvingGuard(resolve=hang, timeout=0.01).addresses("slow.example")


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Records where the client asks to connect; connects to the local receiver instead
    (so no traffic leaves this machine), or refuses."""

    def __init__(self, receiver_port: int | None) -> None:
        self.connects: list[tuple[str, int]] = []
        self._port = receiver_port
        self._real = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        if self._port is None:
            raise httpcore.ConnectError("recorded, not connected")
        return await self._real.connect_tcp("127.0.0.1", self._port, timeout=timeout)

    async def sleep(self, seconds: float) -> None:
        await self._real.sleep(seconds)


async def test_dns_rebinding_cannot_reach_loopback(hooks: Receiver) -> None:
    """The resolver answers a public address first and loopback afterwards: the client
    resolves once, connects to the checked public address, and keeps the name in Host."""
    resolve, asked = resolver([PUBLIC], ["127.0.0.1"])
    backend = RecordingBackend(hooks.port)
    sender = HttpxSender(guard=ResolvingGuard(resolve=resolve), network_backend=backend)
    try:
        first = await sender.send("http://rebind.example:8080/hook", {}, b"{}", 5.0)
        assert first.outcome == pol.SUCCESS, first
        # A new connection (the first one is closed) asks DNS again: now loopback.
        await sender.close()
        sender = HttpxSender(guard=ResolvingGuard(resolve=resolve), network_backend=backend)
        second = await sender.send("http://rebind.example:8080/hook", {}, b"{}", 5.0)
    finally:
        await sender.close()
    assert backend.connects == [(PUBLIC, 8080)], "only the checked public address"
    assert asked == ["rebind.example", "rebind.example"], "one lookup per connection"
    assert second.outcome == pol.BLOCKED and "127.0.0.1" in second.error
    [req] = hooks.received("/hook")
    assert req.headers["host"] == "rebind.example:8080"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x",
        "http://localhost:9/x",
        "http://[::ffff:127.0.0.1]:9/x",
        "http://[::1]:9/x",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/x",
        "http://2130706433:9/x",  # a rule saved before validation: the resolver reads it
    ],
)
async def test_the_sender_never_connects_to_a_forbidden_address(url: str) -> None:
    backend = RecordingBackend(None)
    sender = HttpxSender(guard=ResolvingGuard(), network_backend=backend)
    try:
        result = await sender.send(url, {}, b"{}", 5.0)
    finally:
        await sender.close()
    assert result.outcome in (pol.BLOCKED, pol.INVALID_REQUEST), result
    assert backend.connects == []


async def test_bodies_of_internal_targets_are_not_kept(hooks: Receiver) -> None:
    hooks.script("/h", Reply(500, headers={"x-body": "1"}))
    guard = ResolvingGuard(allow=r.AllowList.parse(["127.0.0.1"]))
    sender = HttpxSender(guard=guard)
    try:
        result = await sender.send(hooks.url("/h"), {}, b"{}", 5.0)
    finally:
        await sender.close()
    assert result.outcome == pol.FAILURE and result.status_code == 500
    assert result.error == "HTTP 500 (body of an internal target not kept)"
