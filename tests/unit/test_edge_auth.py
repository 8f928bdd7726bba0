"""The edge's authentication as rendered for Envoy, and the local tokens (no processes)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from services.cli.auth import SCOPES, KeyStore, parse_scopes
from services.cli.envoy_config import ROUTE_SCOPES, ROUTES, render, scope_regex
from services.config.settings import AuthSettings, Env
from services.core.errors import ConfigError

ENVOY = Path(sys.executable).parent / "envoy"
UPSTREAMS = {
    "ingestion": ("127.0.0.1", 50051),
    "query": ("127.0.0.1", 50052),
    "eventhandler": ("127.0.0.1", 50053),
    "actions": ("127.0.0.1", 50056),
    "tsdb": ("127.0.0.1", 50057),
    "inference": ("127.0.0.1", 50058),
}


@pytest.mark.parametrize("scope", SCOPES)
def test_scope_regex_matches_whole_words_only(scope: str) -> None:
    rx = re.compile(scope_regex(scope))
    for claim in (scope, f"read {scope}", f"{scope} admin", f"a {scope} b"):
        assert rx.fullmatch(claim), claim
    for claim in (f"{scope}er", f"x{scope}", f"{scope}:x", f"{scope}s other", "", " "):
        assert not rx.fullmatch(claim), claim


def test_every_routed_service_needs_a_scope() -> None:
    routed = {prefix for prefix, *_ in ROUTES}
    scoped = {p for prefixes in ROUTE_SCOPES.values() for p in prefixes}
    # A service's scope, or its methods' one by one (InferenceService: reads and a reset).
    assert {r for r in routed if any(p.startswith(r) for p in scoped)} == routed
    assert all(any(p.startswith(r) for r in routed) for p in scoped)
    assert set(ROUTE_SCOPES) == set(SCOPES)


def _validate(tmp_path: Path, text: str) -> None:
    path = tmp_path / "envoy.yaml"
    path.write_text(text)
    done = subprocess.run(
        [str(ENVOY), "--mode", "validate", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_secure_config_validates_and_verifies_tokens(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "auth")
    store.ensure()
    text = render(
        edge_port=18080,
        admin_port=19901,
        upstreams=UPSTREAMS,
        auth=AuthSettings.from_env(Env({})),
        jwks_file=store.jwks_path,
    )
    assert "envoy.filters.http.jwt_authn" in text and "envoy.filters.http.rbac" in text
    assert "from_params" not in text and "AUTHENTICATION IS OFF" not in text
    _validate(tmp_path, text)


def test_remote_jwks_config_validates(tmp_path: Path) -> None:
    auth = AuthSettings.from_env(
        Env({"CJ_AUTH_JWKS_URI": "https://idp.example.com/.well-known/jwks.json"})
    )
    text = render(edge_port=18080, admin_port=19901, upstreams=UPSTREAMS, auth=auth)
    assert "remote_jwks" in text and 'sni: "idp.example.com"' in text
    _validate(tmp_path, text)


def test_insecure_config_has_no_authentication_and_says_so(tmp_path: Path) -> None:
    auth = AuthSettings.from_env(Env({"CJ_AUTH_INSECURE": "true"}))
    text = render(edge_port=18080, admin_port=19901, upstreams=UPSTREAMS, auth=auth)
    assert "name: envoy.filters.http.jwt_authn" not in text
    assert "envoy.filters.http.rbac" not in text
    assert "AUTHENTICATION IS OFF" in text
    _validate(tmp_path, text)


def test_rotation_keeps_old_keys_in_the_jwks_and_signs_with_the_new(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "auth")
    first = store.ensure()
    second = store.rotate()
    assert [k.kid for k in store.signing_keys()] == [first.kid, second.kid]
    assert (store.keys_dir / f"{first.kid}.pem").stat().st_mode & 0o777 == 0o600
    auth = AuthSettings.from_env(Env({}))
    token = store.sign(auth, subject="s", scopes=("read",), ttl=60)
    assert jwt.get_unverified_header(token)["kid"] == second.kid
    jwks = jwt.PyJWKSet.from_json(store.jwks_path.read_text())
    for key in (first, second):
        old = store.sign(auth, subject="s", scopes=("read",), ttl=60, key=key)
        claims = jwt.decode(
            old,
            jwks[key.kid].key,
            algorithms=["ES256"],
            audience="cornjacket",
            issuer="cornjacket-local",
        )
        assert claims["scope"] == "read" and claims["sub"] == "s"


def test_scopes_are_checked() -> None:
    assert parse_scopes(["read events:write", "read,admin"]) == ("read", "events:write", "admin")
    with pytest.raises(ConfigError, match="unknown scope 'events:writer'"):
        parse_scopes(["events:writer"])
    with pytest.raises(ConfigError, match="no scope given"):
        parse_scopes([" "])


def test_inference_routes_only_when_it_runs() -> None:
    """CJ_FEATURE_INFERENCE=false: no upstream, no route (its paths answer 404)."""
    from services.cli.envoy_config import render

    without = {k: v for k, v in UPSTREAMS.items() if k != "inference"}
    common = {"edge_port": 8080, "admin_port": 9901}
    assert "cluster: inference" in render(upstreams=UPSTREAMS, **common)  # type: ignore[arg-type]
    assert "cluster: inference" not in render(upstreams=without, **common)  # type: ignore[arg-type]
