"""The JWT path through Envoy with generated credentials: random bytes, real tokens cut or
altered, odd headers and algorithms, huge headers. Every answer is 401, 403 or 431 with the
platform's error body ({code, message, details}), never a 5xx, and Envoy stays up. A change
that leaves the token's bytes as they were (base64url's unused trailing bits) may pass."""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from services.cli.stack import Stack
from tests.fuzz.tally import Crash, Tally
from tests.support import token

pytestmark = pytest.mark.fuzz

READ = "/api/v1/projections/sensor_state/fuzz-probe"
EDGE = settings(max_examples=80)
REJECTED = {401, 403, 431}
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.edge_url, timeout=20) as c:
        yield c


@pytest.fixture(scope="module")
def writer(stack: Stack) -> str:
    """A valid token without the read scope: the route answers 403."""
    return token(stack, "events:write", ttl=3600)


@pytest.fixture(scope="module")
def real(stack: Stack) -> str:
    """A valid token with the read scope: the route answers 404 (no such projection)."""
    return token(stack, "read", ttl=3600)


def _segments(tok: str) -> list[bytes | None]:
    out: list[bytes | None] = []
    for part in tok.split("."):
        try:
            out.append(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        except (binascii.Error, ValueError):
            out.append(None)
    return out


def _send(
    tally: Tally,
    target: str,
    client: httpx.Client,
    headers: dict[str, str] | list[tuple[str, str]],
    *,
    same_as_valid: bool = False,
) -> None:
    # HTTP carries no leading or trailing white space in a header value (h11 refuses it);
    # values go as latin-1 bytes: random header bytes are not all ASCII.
    items = headers.items() if isinstance(headers, dict) else headers
    pairs = [(k.encode(), v.strip(" \t").encode("latin-1")) for k, v in items]
    with tally.attack(target):
        try:
            r = client.get(READ, headers=pairs)
        except httpx.RemoteProtocolError as e:
            raise Crash(f"Envoy dropped the connection: {e}") from e
        if r.status_code >= 500:
            tally.server_error(target)
        allowed = REJECTED | ({404} if same_as_valid else set())
        assert r.status_code in allowed, (r.status_code, r.text[:300])
        body = r.json()
        assert set(body) == {"code", "message", "details"} and body["message"], body
        assert not any(k.startswith(("x-envoy-", "grpc-")) for k in r.headers), r.headers


HEADER_BYTES = st.binary(max_size=300).map(
    lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F).decode("latin-1").strip()
)


@EDGE
@given(value=HEADER_BYTES, scheme=st.sampled_from(["Bearer ", "bearer ", "", "Basic ", "Bearer  "]))
@example("", "Bearer ")
def test_random_bytes(
    stack: Stack, client: httpx.Client, tally: Tally, value: str, scheme: str
) -> None:
    _send(tally, "edge JWT: random bytes", client, {"Authorization": scheme + value})


@EDGE
@given(
    cut=st.integers(min_value=0),
    flips=st.lists(
        st.tuples(st.integers(min_value=0), st.sampled_from(ALPHABET + ".=+/ ")), max_size=3
    ),
    shuffle=st.sampled_from(["none", "swap header/payload", "drop signature", "extra segment"]),
)
def test_truncated_and_altered_real_tokens(
    client: httpx.Client,
    real: str,
    tally: Tally,
    cut: int,
    flips: list[tuple[int, str]],
    shuffle: str,
) -> None:
    tok = list(real)
    for i, ch in flips:
        tok[i % len(tok)] = ch
    text = "".join(tok)
    if cut % 3 == 0:
        text = text[: cut % len(text)]
    h, _, rest = text.partition(".")
    p, _, s = rest.partition(".")
    text = {
        "none": text,
        "swap header/payload": f"{p}.{h}.{s}",
        "drop signature": f"{h}.{p}.",
        "extra segment": f"{text}.{h}",
    }[shuffle]
    # Known leniency of Envoy's verifier: one extra base64url character after an ES256
    # signature is ignored (same claims, same key, same verified signature bytes).
    same = " " not in text and (
        text == real
        or (text.count(".") == 2 and _segments(text) == _segments(real))
        or (len(text) == len(real) + 1 and text.startswith(real))
    )
    _send(
        tally,
        "edge JWT: altered real tokens",
        client,
        {"Authorization": f"Bearer {text}"},
        same_as_valid=same,
    )


def _b64(data: Any) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


ODD_ALGS = st.one_of(
    st.sampled_from(
        [
            "none",
            "None",
            "NONE",
            "HS256",
            "HS512",
            "RS256",
            "PS256",
            "ES384",
            "ES512",
            "EdDSA",
            "",
            "ES256 ",
        ]
    ),
    st.none(),
    st.integers(),
    st.lists(st.just("ES256"), max_size=2),
)


@EDGE
@given(
    alg=ODD_ALGS,
    kid=st.one_of(st.none(), st.just("real"), st.text(max_size=30), st.integers()),
    extra=st.dictionaries(
        st.sampled_from(["jku", "x5u", "jwk", "crit", "typ", "cty"]), st.text(max_size=40)
    ),
    signature=st.sampled_from(["real", "empty", "hmac with the public key", "random"]),
)
def test_odd_headers_and_algorithms(
    stack: Stack,
    client: httpx.Client,
    real: str,
    tally: Tally,
    alg: Any,
    kid: Any,
    extra: dict[str, str],
    signature: str,
) -> None:
    key = stack.keys.signing_keys()[-1]
    header: dict[str, Any] = {"typ": "JWT", **extra, "alg": alg}
    if kid is not None:
        header["kid"] = key.kid if kid == "real" else kid
    now = int(time.time())
    claims = {
        "iss": stack.settings.auth.issuer,
        "aud": stack.settings.auth.audience,
        "sub": "fuzz",
        "scope": "read events:write admin",
        "iat": now,
        "exp": now + 600,
    }
    signing_input = f"{_b64(header)}.{_b64(claims)}"
    sig = {
        "real": real.rsplit(".", 1)[1],
        "empty": "",
        "random": _b64(bytes(range(64))),
        "hmac with the public key": jwt.api_jws.get_algorithm_by_name("HS256")
        .sign(signing_input.encode(), json.dumps(key.public_jwk()).encode())
        .hex(),
    }[signature]
    _send(
        tally,
        "edge JWT: odd headers and algorithms",
        client,
        {"Authorization": f"Bearer {signing_input}.{sig}"},
    )


@EDGE
@given(
    size_kb=st.integers(min_value=1, max_value=200),
    how=st.sampled_from(["long token", "long other header", "many headers"]),
)
@example(61, "long token")
@example(120, "many headers")
def test_huge_headers(
    client: httpx.Client, real: str, writer: str, tally: Tally, size_kb: int, how: str
) -> None:
    """Past Envoy's 60 KiB of request headers: 431; below it the token decides (a padded
    token fails verification: 401; a valid token lacking the read scope: 403)."""
    filler = "A" * (size_kb * 1024)
    headers: list[tuple[str, str]]
    if how == "long token":
        headers = [("Authorization", f"Bearer {real}{filler}")]
    elif how == "long other header":
        headers = [("Authorization", f"Bearer {writer}"), ("x-filler", filler)]
    else:
        headers = [("Authorization", f"Bearer {writer}")] + [
            (f"x-f{i}", "A" * 1000) for i in range(size_kb)
        ]
    _send(tally, "edge JWT: huge headers", client, headers)


def test_envoy_stays_up(stack: Stack, client: httpx.Client, real: str, tally: Tally) -> None:
    """Run last in this module: after every attack, the edge still serves a valid caller."""
    with tally.attack("edge JWT: Envoy still up afterwards"):
        r = client.get(READ, headers={"Authorization": f"Bearer {real}"})
        assert r.status_code == 404, r.text
        assert client.get("/health").status_code == 200
