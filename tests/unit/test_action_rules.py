"""Rule validation, pattern matching and webhook signatures (verified by the SDK)."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime

import pytest
from cornjacket_sdk.webhooks import WebhookVerificationError, verify

from services.actions import rules as r
from services.actions.signing import signature_headers
from services.core.errors import InvalidInput

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER = "whsec_" + base64.b64encode(b"o" * 32).decode()


def draft(**kw: object) -> r.RuleDraft:
    base: dict[str, object] = {
        "name": "hot",
        "event_type_pattern": "sensor.reading",
        "condition": "payload.value > 80",
        "target": r.Target("https://example.com/hook", {"X-Team": "ops"}, (SECRET,)),
    }
    base.update(kw)
    return r.RuleDraft(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        ("*", "anything.at_all", True),
        ("sensor.*", "sensor.reading", True),
        ("sensor.*", "sensors.reading", False),
        ("sensor.reading", "sensor.reading", True),
        ("sensor.reading", "sensor.reading2", False),
        ("a.b.*", "a.b.c", True),
    ],
)
def test_patterns(pattern: str, event_type: str, expected: bool) -> None:
    assert r.validate_pattern(pattern) == pattern
    assert r.pattern_matches(pattern, event_type) is expected


@pytest.mark.parametrize(
    ("changes", "block_private", "message"),
    [
        ({"name": " "}, False, "name is required"),
        ({"name": "a\x00b"}, False, "name must not contain control characters"),
        ({"target": r.Target("http://e.com/a\x00")}, False, "spaces or control characters"),
        ({"target": r.Target("https://e.com/", {"X": 1})}, False, "must be a string"),  # type: ignore[dict-item]
        ({"event_type_pattern": "sensor*"}, False, "is not an event type"),
        ({"event_type_pattern": "*.reading"}, False, "is not an event type"),
        ({"event_type_pattern": ""}, False, "event_type_pattern is required"),
        ({"condition": "payload.value >> 80"}, False, "condition: expected a value or a path"),
        ({"target": r.Target("ftp://example.com/x")}, False, "must start with http:// or https://"),
        ({"target": r.Target("http:///x")}, False, "has no host"),
        ({"target": r.Target("http://example.com:99999/")}, False, "is not a valid URL"),
        ({"target": r.Target("")}, False, "target.url is required"),
        ({"target": r.Target("http://127.0.0.1:8000/")}, True, "forbidden address range"),
        ({"target": r.Target("http://10.1.2.3/")}, True, "forbidden address range"),
        ({"target": r.Target("http://[::1]/")}, True, "forbidden address range"),
        ({"target": r.Target("http://169.254.169.254/")}, True, "forbidden address range"),
        ({"target": r.Target("http://localhost/")}, True, "forbidden (local) address"),
        (
            {"target": r.Target("https://e.com/", {"Webhook-Id": "x"})},
            False,
            "set by the orchestrator",
        ),
        (
            {"target": r.Target("https://e.com/", {"X": "a\r\nb"})},
            False,
            "not a valid header value",
        ),
        (
            {"target": r.Target("https://e.com/", {"bad name": "x"})},
            False,
            "not a valid header name",
        ),
        ({"target": r.Target("https://e.com/", {}, ("secret",))}, False, "whsec_<base64>"),
        ({"target": r.Target("https://e.com/", {}, ("whsec_!!",))}, False, "not base64"),
        ({"target": r.Target("https://e.com/", {}, ("whsec_YWJj",))}, False, "24 to 64 bytes"),
    ],
)
def test_invalid_rules_are_rejected_clearly(
    changes: dict[str, object], block_private: bool, message: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        r.validate_draft(draft(**changes), block_private=block_private)
    assert message in str(err.value)


def test_private_targets_are_allowed_unless_blocked() -> None:
    ok = draft(target=r.Target("http://127.0.0.1:8000/hook"))
    assert r.validate_draft(ok, block_private=False).target.url == "http://127.0.0.1:8000/hook"
    assert r.validate_draft(draft(), block_private=True).name == "hot"


def test_endpoint_key() -> None:
    assert r.endpoint_of("https://Example.com/a?b") == "https://example.com:443"
    assert r.endpoint_of("http://127.0.0.1:8000/x") == "http://127.0.0.1:8000"
    assert r.endpoint_of("http://[::1]/x") == "http://[::1]:80"


def test_generated_secret_is_valid_and_masked() -> None:
    s = r.generate_secret()
    assert len(r.decode_secret(s)) == 32
    assert r.mask_secret(s) == s[:10] + "…"


def test_signatures_verify_with_either_secret_during_rotation() -> None:
    body = json.dumps({"rule_id": "r", "event": {"event_id": "e"}}).encode()
    headers = signature_headers([SECRET, OTHER], "msg-1", 1_700_000_000, body)
    assert headers["webhook-id"] == "msg-1" and headers["webhook-timestamp"] == "1700000000"
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert all(sig.startswith("v1,") for sig in headers["webhook-signature"].split(" "))
    for secret in (SECRET, OTHER):
        assert verify(secret, headers, body, now=1_700_000_010) == json.loads(body)
    unknown = "whsec_" + base64.b64encode(b"u" * 32).decode()
    with pytest.raises(WebhookVerificationError, match="no signature matches"):
        verify(unknown, headers, body, now=1_700_000_010)
    with pytest.raises(WebhookVerificationError, match="no signature matches"):
        verify(SECRET, headers, body + b" ", now=1_700_000_010)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(SECRET, headers, body, now=1_700_000_000 + 301)
    with pytest.raises(WebhookVerificationError, match="missing header webhook-id"):
        verify(SECRET, {"webhook-timestamp": "1"}, body)


def test_signature_matches_the_standard_webhooks_reference_vector() -> None:
    # From the Standard Webhooks spec test vectors.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    headers = signature_headers([secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_a_masked_secret_sent_back_is_explained() -> None:
    masked = r.mask_secret(SECRET)
    with pytest.raises(InvalidInput, match="masked secret"):
        r.validate_draft(
            draft(target=r.Target("https://e.com/", {}, (masked,))), block_private=False
        )


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("http://10.0.0.1/x", True),
        ("http://127.0.0.1:8000/x", True),
        ("http://[::ffff:192.168.1.1]/x", True),
        ("http://localhost:8000/x", True),
        ("http://169.254.169.254/latest", True),
        ("https://93.184.216.34/x", False),
    ],
)
async def test_the_resolving_guard_refuses_forbidden_ranges(url: str, refused: bool) -> None:
    from services.actions.delivery import ResolvingGuard

    if refused:
        with pytest.raises(InvalidInput, match="forbidden"):
            await ResolvingGuard().check(url)
    else:
        await ResolvingGuard().check(url)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("caf\u00e9", "non-ASCII"),  # httpx encodes header values as ASCII
        ("a\x01b", "control character"),
        ("a\x7fb", "control character"),
        (" token", "leading space"),  # h11 refuses a value with surrounding whitespace
        ("token\t", "trailing tab"),
    ],
)
def test_header_values_that_cannot_be_sent_are_refused_naming_the_header(
    value: str, why: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        r.validate_draft(
            draft(target=r.Target("https://e.com/", {"X-Api-Key": value}, (SECRET,))),
            block_private=False,
        )
    assert "target.headers" in str(err.value) and "'X-Api-Key'" in str(err.value), why
    assert "printable ASCII" in str(err.value), why


def test_header_values_that_can_be_sent_are_kept() -> None:
    headers = {"Authorization": "Bearer a.b-c_d~e+f/g=", "X-Empty": "", "X-Mid": "a \tb"}
    got = r.validate_draft(
        draft(target=r.Target("https://e.com/", headers, (SECRET,))), block_private=False
    )
    assert got.target.headers == headers


@pytest.mark.parametrize(
    "url",
    [
        "http://\u2603.net/",  # not a valid IDNA 2008 name: httpx raises InvalidURL
        "http://b\u00fc..de/",
        "http://999.1.1.1/",  # looks like IPv4, is not one
        "http://1.2.3/",  # a numeric last label: the resolver reads it as an address
        "http://0x7f.1/",
        "http://a..b/",
        "http://-a.example.com/",
        "http://exa$mple.com/",
        "http://a{b}.com/",
        "http://xn--zz.com/",  # a broken A-label
        "http://" + "a" * 64 + ".com/",
        "http://" + ".".join(["abcdefgh"] * 30) + "/",  # longer than 253
    ],
)
def test_host_names_that_cannot_be_sent_to_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput) as err:
        r.validate_draft(draft(target=r.Target(url, {}, (SECRET,))), block_private=False)
    assert "target.url" in str(err.value) and "not a valid host" in str(err.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hook",
        "https://EXAMPLE.com./hook",
        "http://b\u00fccher.de/x",
        "http://a_b.example.com/",
        "http://xn--bcher-kva.de/",
        "http://127.0.0.1:8000/x",
        "http://[::1]:8000/x",
        "http://localhost:8000/x",
    ],
)
def test_valid_host_names_pass(url: str) -> None:
    assert r.validate_draft(draft(target=r.Target(url, {}, (SECRET,))), block_private=False)


async def test_the_resolving_guard_bounds_dns_resolution() -> None:
    """A resolver that never answers must not hold a worker (and its lease) forever."""
    from services.actions.delivery import ResolutionTimeout, ResolvingGuard

    never = asyncio.Event()

    async def hang(host: str) -> list[str]:
        await never.wait()
        return []

    guard = ResolvingGuard(resolve=hang, timeout=0.01)
    with pytest.raises(ResolutionTimeout, match="did not resolve within"):
        await guard.addresses("slow.example")
    # When a rule is saved, an unresolved host passes (the attempt checks again).
    await guard.check("http://slow.example/x")


def test_answers_mask_header_values_and_url_credentials() -> None:
    from services.actions.grpc_api import rule_to_proto
    from services.infra.codec import from_struct

    now = datetime(2026, 5, 1, tzinfo=UTC)
    rule = r.Rule(
        "0190c0de-0000-7000-8000-0000000000aa",
        "n",
        "sensor.*",
        "",
        r.Target("https://bob:hunter2@e.com/h?x=1", {"Authorization": "Bearer tok"}, (SECRET,)),
        True,
        "",
        now,
        now,
    )
    got = rule_to_proto(rule)
    assert got.target.url == "https://…@e.com/h?x=1"
    assert from_struct(got.target.headers) == {"Authorization": "…"}
    assert "hunter2" not in str(got) and "tok" not in str(got)
    for masked in (
        r.Target("https://…@e.com/h", {}, (SECRET,)),
        r.Target("https://e.com/h", {"Authorization": "…"}, (SECRET,)),
    ):
        with pytest.raises(InvalidInput, match="masked"):
            r.validate_draft(draft(target=masked), block_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "https://svc:SuperSecretPw@hooks.example.com:99999/x",  # bad port
        "ftp://svc:SuperSecretPw@hooks.example.com/x",  # bad scheme
        "https://svc:SuperSecretPw@/x",  # no host
        "https://svc:SuperSecretPw@[::1/x",  # urlsplit itself refuses it
    ],
)
def test_url_errors_never_echo_the_credentials(url: str) -> None:
    # The message goes to the caller and into the audit log's error column.
    with pytest.raises(InvalidInput) as e:
        r.validate_url(url, block_private=False)
    assert "SuperSecretPw" not in str(e.value)
    assert "svc" not in str(e.value)
    assert r.MASK in str(e.value)
