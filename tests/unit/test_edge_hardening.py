"""The edge's protections as rendered for Envoy (rate budgets, host names, trusted hops,
overload bounds) and their settings; Envoy itself validates every rendering."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from services.cli.auth import KeyStore
from services.cli.envoy_config import REFLECTION_ROUTES, ROUTES, render
from services.config.settings import AuthSettings, EdgeSettings, Env, RateBudget, StackSettings
from services.core.errors import ConfigError
from tests.unit.test_edge_auth import UPSTREAMS, _validate


def _render(tmp_path: Path, edge: EdgeSettings, *, insecure: bool = False) -> str:
    store = KeyStore(tmp_path / "auth")
    store.ensure()
    auth = AuthSettings.from_env(Env({"CJ_AUTH_INSECURE": "true" if insecure else "false"}))
    return render(
        edge_port=18080,
        admin_port=19901,
        upstreams=UPSTREAMS,
        auth=auth,
        jwks_file=store.jwks_path,
        edge=edge,
    )


def _hcm(text: str) -> dict[str, object]:
    doc = yaml.safe_load(text)
    hcm = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    return hcm["typed_config"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("insecure", [False, True], ids=["secure", "insecure"])
def test_defaults_render_and_validate(tmp_path: Path, insecure: bool) -> None:
    text = _render(tmp_path, EdgeSettings(), insecure=insecure)
    _validate(tmp_path, text)
    hcm = _hcm(text)
    assert hcm["use_remote_address"] is True and hcm["xff_num_trusted_hops"] == 0
    assert hcm["common_http_protocol_options"]["headers_with_underscores_action"] == (  # type: ignore[index]
        "REJECT_REQUEST"
    )
    hosts = hcm["route_config"]["virtual_hosts"]  # type: ignore[index]
    assert hosts[0]["domains"] == ["127.0.0.1", "localhost", "[::1]"]
    assert hosts[-1]["name"] == "foreign-host"
    routes = hosts[0]["routes"]
    # (the console's pages carry per-route config too: no token for them, no rate budget)
    limited = [
        r
        for r in routes
        if "envoy.filters.http.local_ratelimit" in r.get("typed_per_filter_config", {})
    ]
    assert len(limited) == len(ROUTES) + len(REFLECTION_ROUTES)
    key = "remote_address" if insecure else "client"
    for r in limited:
        cfg = r["typed_per_filter_config"]["envoy.filters.http.local_ratelimit"]
        assert cfg["descriptors"][0]["entries"] == [{"key": key, "value": ""}]
        assert cfg["rate_limited_as_resource_exhausted"] is True
    assert yaml.safe_load(text)["overload_manager"]["resource_monitors"]


def test_budgets_hosts_and_hops_follow_the_settings(tmp_path: Path) -> None:
    edge = EdgeSettings(
        ingest=RateBudget(5, 7),
        read=RateBudget(0, 0),
        admin=RateBudget(1, 1),
        hosts=("*",),
        trusted_hops=1,
    )
    text = _render(tmp_path, edge)
    _validate(tmp_path, text)
    hcm = _hcm(text)
    assert hcm["xff_num_trusted_hops"] == 1
    hosts = hcm["route_config"]["virtual_hosts"]  # type: ignore[index]
    assert [h["name"] for h in hosts] == ["cornjacket"] and hosts[0]["domains"] == ["*"]
    by_prefix = {r["match"]["prefix"]: r for r in hosts[0]["routes"] if "prefix" in r["match"]}
    ingest = by_prefix["/cornjacket.v1.IngestionService/"]["typed_per_filter_config"]
    bucket = ingest["envoy.filters.http.local_ratelimit"]["token_bucket"]
    assert (bucket["tokens_per_fill"], bucket["max_tokens"]) == (5, 7)
    assert "typed_per_filter_config" not in by_prefix["/cornjacket.v1.QueryService/"]


def test_edge_settings_from_the_environment() -> None:
    edge = StackSettings.from_env(
        Env(
            {
                "CJ_EDGE_INGEST_RATE": "100",
                "CJ_EDGE_READ_RATE": "0",
                "CJ_EDGE_HOSTS": "API.example.com, *.example.org,[::1]",
                "CJ_EDGE_TRUSTED_HOPS": "1",
            }
        )
    ).edge
    assert edge.ingest == RateBudget(100, 40_000)
    assert edge.read.rate == 0
    assert edge.hosts == ("api.example.com", "*.example.org", "[::1]")
    assert edge.trusted_hops == 1
    assert EdgeSettings.from_env(Env({})) == EdgeSettings()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CJ_EDGE_HOSTS": "evil example"}, "CJ_EDGE_HOSTS"),
        ({"CJ_EDGE_HOSTS": "localhost:8080"}, "CJ_EDGE_HOSTS"),
        ({"CJ_EDGE_INGEST_RATE": "ten"}, "CJ_EDGE_INGEST_RATE"),
        ({"CJ_EDGE_READ_RATE": "100", "CJ_EDGE_READ_BURST": "10"}, "CJ_EDGE_READ_BURST"),
        ({"CJ_EDGE_TRUSTED_HOPS": "-1"}, "CJ_EDGE_TRUSTED_HOPS"),
        ({"CJ_EDGE_MAX_HEAP_MB": "1"}, "CJ_EDGE_MAX_HEAP_MB"),
    ],
)
def test_bad_edge_settings_fail_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        EdgeSettings.from_env(Env(env))
