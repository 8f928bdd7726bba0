"""Reflection at the edge as rendered for Envoy (ADR 22; no processes): routed to query in
both modes, open to any verified token with a subject, and listing exactly what the edge
transcodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from services.cli.auth import KeyStore
from services.cli.envoy_config import REFLECTION_ROUTES, render
from services.config.settings import AuthSettings, Env
from services.infra.reflection import PUBLIC_SERVICES
from tests.unit.test_edge_auth import UPSTREAMS


def _hcm(tmp_path: Path, *, insecure: bool) -> dict[str, Any]:
    store = KeyStore(tmp_path / "auth")
    store.ensure()
    auth = AuthSettings.from_env(Env({"CJ_AUTH_INSECURE": "true" if insecure else "false"}))
    text = render(
        edge_port=18080,
        admin_port=19901,
        upstreams=UPSTREAMS,
        auth=auth,
        jwks_file=store.jwks_path,
    )
    listener = yaml.safe_load(text)["static_resources"]["listeners"][0]
    hcm: dict[str, Any] = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm


@pytest.mark.parametrize("insecure", [False, True])
def test_reflection_is_routed_to_query(tmp_path: Path, insecure: bool) -> None:
    routes = _hcm(tmp_path, insecure=insecure)["route_config"]["virtual_hosts"][0]["routes"]
    by_prefix = {r["match"].get("prefix"): r for r in routes}
    for prefix in (
        "/grpc.reflection.v1alpha.ServerReflection/",
        "/grpc.reflection.v1.ServerReflection/",
    ):
        assert by_prefix[prefix]["route"]["cluster"] == "query"
    assert {p for p, *_ in REFLECTION_ROUTES} == {
        "/grpc.reflection.v1alpha.ServerReflection/",
        "/grpc.reflection.v1.ServerReflection/",
    }


def test_reflection_needs_a_verified_subject(tmp_path: Path) -> None:
    filters = {f["name"]: f for f in _hcm(tmp_path, insecure=False)["http_filters"]}
    policy = filters["envoy.filters.http.rbac"]["typed_config"]["rules"]["policies"]["reflection"]
    prefixes = {p["url_path"]["path"]["prefix"] for p in policy["permissions"]}
    assert prefixes == {p for p, *_ in REFLECTION_ROUTES}
    [principal] = policy["principals"]
    assert principal["metadata"]["path"] == [{"key": "jwt_payload"}, {"key": "sub"}]
    # jwt_authn requires a token on every path, reflection included
    rules = filters["envoy.filters.http.jwt_authn"]["typed_config"]["rules"]
    assert rules == [{"match": {"prefix": "/"}, "requires": {"provider_name": "cornjacket"}}]


def test_reflection_lists_what_the_edge_transcodes(tmp_path: Path) -> None:
    filters = {f["name"]: f for f in _hcm(tmp_path, insecure=True)["http_filters"]}
    transcoded = filters["envoy.filters.http.grpc_json_transcoder"]["typed_config"]["services"]
    assert set(PUBLIC_SERVICES) == set(transcoded)
