"""Render envoy/envoy.yaml.tmpl with this stack's ports and paths."""

from __future__ import annotations

import base64
import json
import re
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from string import Template
from typing import cast
from urllib.parse import urlsplit

from services.config.settings import AuthSettings, EdgeSettings, RateBudget
from services.infra import assets

# The checkout's files, or the wheel's copies (services/infra/assets.py, ADR 22).
TEMPLATE = assets.ENVOY_TEMPLATE
DESCRIPTOR = assets.DESCRIPTOR
CONSOLE = assets.CONSOLE  # the built console (issue 19; make gen)

_CLUSTER = """\
    - name: {name}
      type: STRICT_DNS
      connect_timeout: 1s
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config:
            http2_protocol_options: {{}}
      health_checks:
        - timeout: 1s
          interval: {interval}
          no_traffic_interval: {interval}
          unhealthy_threshold: 1
          healthy_threshold: 1
          grpc_health_check: {{}}
{outlier}      load_assignment:
        cluster_name: {name}
        endpoints:
          - lb_endpoints:
{endpoints}
"""

# Only for a service with replicas (an empty string for one endpoint: ejecting the only
# endpoint turns one call that hit the route timeout while PostgreSQL was slow into 503s and
# an unhealthy /health for seconds, growing with every ejection). A replica that stops
# answering (killed, restarting) is ejected after a few refused connections, resets or
# timeouts in a row, before the next health check marks it down; errors the service itself
# answers (503 while its database is down) do not eject it. max_ejection_time caps the
# growing ejection (Envoy's default is 300 s) so a replica that recovered is back soon.
_OUTLIER = """\
      outlier_detection:
        split_external_local_origin_errors: true
        consecutive_local_origin_failure: 3
        enforcing_consecutive_local_origin_failure: 100
        enforcing_consecutive_5xx: 0
        enforcing_consecutive_gateway_failure: 0
        enforcing_success_rate: 0
        interval: 1s
        base_ejection_time: 5s
        max_ejection_time: 30s
        max_ejection_percent: 100
"""

_ENDPOINT = """\
              - endpoint:
                  address:
                    socket_address: {{ address: {host}, port_value: {port} }}
"""


# Which scope each gRPC service needs, for native gRPC and transcoded HTTP alike (RBAC runs
# after the transcoder, on the gRPC path). A new method of a service inherits its scope.
ROUTE_SCOPES: dict[str, tuple[str, ...]] = {
    "events:write": ("/cornjacket.v1.IngestionService/",),
    "read": (
        "/cornjacket.v1.QueryService/",
        "/cornjacket.v1.LineageService/",
        "/cornjacket.v1.SeriesService/",  # time series (issue 17)
        "/cornjacket.v1.WatchService/",  # live streams (issue 19)
        "/cornjacket.v1.StatsService/",  # the console overview's figures (issue 19)
        # issue 18: method by method (the reset needs admin; GetEventAnomalies is internal)
        "/cornjacket.v1.InferenceService/ListScores",
        "/cornjacket.v1.InferenceService/ListAnomalies",
        "/cornjacket.v1.InferenceService/GetModelStatus",
    ),
    "admin": (
        "/cornjacket.v1.ActionService/",
        "/cornjacket.v1.DeadLetterService/",
        "/cornjacket.v1.AuditService/",
        "/cornjacket.v1.InferenceService/ResetModel",
    ),
}

_AUTHN = """\
- name: envoy.filters.http.jwt_authn
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
    providers:
      cornjacket:
        issuer: {issuer}
        audiences: [{audience}]
        clock_skew_seconds: {skew}
        require_expiration: true
        # Only the Authorization header: a token in the query string (which
        # ends up in logs) does not authenticate.
        from_headers: [{{ name: authorization, value_prefix: "Bearer " }}]
        forward: false
        # Verified tokens are remembered (their exp is still checked on every use): a
        # client sending the same token saves the signature check on 2 cores.
        jwt_cache_config: {{ jwt_cache_size: 1000 }}
        payload_in_metadata: jwt_payload
        claim_to_headers:
          - {{ header_name: x-cj-subject, claim_name: sub }}
          - {{ header_name: x-cj-scope, claim_name: scope }}
{jwks}
    rules:
      - match: {{ prefix: "/" }}
        requires: {{ provider_name: cornjacket }}
"""

_RBAC = """\
- name: envoy.filters.http.rbac
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
    rules:
      action: ALLOW
      policies:
        # Paths outside the API (unknown routes) answer 404 to any verified token with a
        # subject. Every call needs a non-empty sub (whose call it is: principals, audit):
        # a token without one is refused (403 here, turned into 401 by local_reply_config).
        outside-api:
          permissions:
            - not_rule: {{ url_path: {{ path: {{ prefix: "/cornjacket.v1." }} }} }}
          principals:
            - &has_subject
              metadata:
                filter: envoy.filters.http.jwt_authn
                path: [{{ key: jwt_payload }}, {{ key: sub }}]
                value: {{ string_match: {{ safe_regex: {{ regex: ".+" }} }} }}
        # Reflection (ADR 22): any verified token with a subject, whatever its scope (the
        # schema is published with the code; every call it describes keeps its own scope).
        reflection:
          permissions:
{reflection}
          principals:
            - *has_subject
{policies}
"""

_POLICY = """\
        {scope}:
          permissions:
{permissions}
          principals:
            - and_ids:
                ids:
                  - metadata:
                      filter: envoy.filters.http.jwt_authn
                      path: [{{ key: jwt_payload }}, {{ key: scope }}]
                      value: {{ string_match: {{ safe_regex: {{ regex: {regex} }} }} }}
                  - *has_subject
"""

_JWKS_CLUSTER = """
    # Where Envoy fetches the token signing keys (CJ_AUTH_JWKS_URI).
    - name: jwks
      type: STRICT_DNS
      connect_timeout: 5s
      dns_lookup_family: V4_PREFERRED
      load_assignment:
        cluster_name: jwks
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address: {{ address: {host}, port_value: {port} }}
{tls}"""

_TLS = """\
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
          sni: {host}
          common_tls_context:
            validation_context:
              trusted_ca: {{ filename: /etc/ssl/certs/ca-certificates.crt }}
              match_typed_subject_alt_names:
                - san_type: DNS
                  matcher: {{ exact: {host} }}
"""


# The API's routes (gRPC paths: the transcoder rewrites HTTP/JSON paths before the route is
# chosen again), their upstream cluster, timeout and rate budget (EdgeSettings' field).
ROUTES: tuple[tuple[str, str, str, str], ...] = (
    ("/cornjacket.v1.IngestionService/", "ingestion", "30s", "ingest"),
    ("/cornjacket.v1.QueryService/", "query", "30s", "read"),
    ("/cornjacket.v1.LineageService/", "query", "30s", "read"),
    ("/cornjacket.v1.StatsService/", "query", "30s", "read"),  # issue 19: overview figures
    ("/cornjacket.v1.AuditService/", "query", "30s", "admin"),
    # Live streams (issue 19): no route timeout (0s); heartbeats keep the stream from
    # stream_idle_timeout, the service bounds the watchers and cuts slow ones off.
    ("/cornjacket.v1.WatchService/", "query", "0s", "read"),
    ("/cornjacket.v1.DeadLetterService/", "eventhandler", "120s", "admin"),
    ("/cornjacket.v1.ActionService/", "actions", "30s", "admin"),
    # Time series (issue 17): only when the stack runs the tsdb service (CJ_FEATURE_TSDB).
    ("/cornjacket.v1.SeriesService/", "tsdb", "30s", "read"),
    ("/cornjacket.v1.InferenceService/", "inference", "30s", "read"),  # issue 18
)

# gRPC server reflection (issue 19, ADR 22): the query process answers it for every public
# service. list and describe travel in one stream, so the edge cannot tell them apart: any
# verified token with a subject may use it (RBAC's reflection policy), under the read budget.
REFLECTION_ROUTES: tuple[tuple[str, str, str, str], ...] = (
    ("/grpc.reflection.v1alpha.ServerReflection/", "query", "30s", "read"),
    ("/grpc.reflection.v1.ServerReflection/", "query", "30s", "read"),
)

# A request that never reached a replica (connection refused, stream refused: the replica
# was killed or is restarting) goes to another one; nothing else is retried (an ingest
# reset mid-call may have been accepted: the client retries with its idempotency key).
_ROUTE = """\
- match: {{ prefix: {prefix} }}
  route:
    cluster: {cluster}
    timeout: {timeout}
    retry_policy: {{ retry_on: "connect-failure,refused-stream", num_retries: 2 }}
{limit}"""

# A bucket per client (the verified token's subject, or the client address when the edge
# authenticates nobody) and route, kept for the 10,000 clients seen last; a request
# without the key (a token without sub) shares the route's default bucket of one budget.
_LIMIT = """\
  typed_per_filter_config:
    envoy.filters.http.local_ratelimit:
      "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
      stat_prefix: {budget}
      rate_limits: [{{ actions: [{action}] }}]
      token_bucket: &{budget}_{n}
        {{ max_tokens: {burst}, tokens_per_fill: {rate}, fill_interval: 1s }}
      max_dynamic_descriptors: 10000
      always_consume_default_token_bucket: false
      rate_limited_as_resource_exhausted: true
      filter_enabled: {{ default_value: {{ numerator: 100, denominator: HUNDRED }} }}
      filter_enforced: {{ default_value: {{ numerator: 100, denominator: HUNDRED }} }}
      response_headers_to_add:
        - header: {{ key: retry-after, value: "1" }}
          append_action: OVERWRITE_IF_EXISTS_OR_ADD
      descriptors:
        - entries: [{{ key: {key}, value: "" }}]
          token_bucket: *{budget}_{n}
"""

_VIRTUAL_HOSTS = """\
max_direct_response_body_size_bytes: {max_body}
virtual_hosts:
  - name: cornjacket
    domains: [{domains}]
    routes:
{console}{routes}
      - match: {{ prefix: "/" }}
        direct_response:
          status: 404
          body: {{ inline_string: "no route for this path" }}
{foreign}"""

# Any other Host name: a web page that a DNS name rebound onto this address must not reach
# the API. Answered before authentication (a browser would not send a token anyway) and the
# same with or without one; /health still answers (the Lua filter, for load balancers that
# probe the task's address).
_FOREIGN = """\
  - name: foreign-host
    domains: ["*"]
    routes:
      - match: { prefix: "/" }
        direct_response:
          status: 421
          body:
            inline_string: "this edge does not answer for the host name in the Host header
              (CJ_EDGE_HOSTS)"
"""

_FOREIGN_NO_AUTH = """\
    typed_per_filter_config:
      envoy.filters.http.jwt_authn:
        "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig
        disabled: true
      envoy.filters.http.rbac:
        "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
"""


# The console (issue 19, ADR 21): its few built files are part of the rendered config,
# answered by Envoy itself (read once when the config is rendered; nothing is read from disk
# per request, no path reaches the file system). Open without a token: the sign-in page is
# where the token is pasted; everything it shows comes from the API, which asks for one.
_CONSOLE_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css"}
_CONSOLE_CSP = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_CONSOLE_ROUTE = """\
- match: {{ path: {path} }}
  direct_response:
    status: 200
    body: {{ inline_bytes: {body} }}
  response_headers_to_add:
    - header: {{ key: content-type, value: {ctype} }}
      append_action: OVERWRITE_IF_EXISTS_OR_ADD
    - header: {{ key: cache-control, value: {cache} }}
    - header: {{ key: content-security-policy, value: {csp} }}
    - header: {{ key: x-content-type-options, value: nosniff }}
    - header: {{ key: referrer-policy, value: no-referrer }}
{no_auth}"""
_CONSOLE_NO_AUTH = """\
  typed_per_filter_config:
    envoy.filters.http.jwt_authn:
      "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig
      disabled: true
    envoy.filters.http.rbac:
      "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
"""
# A relative Location: the edge strips the port from Host (strip_any_host_port).
_CONSOLE_REDIRECT = """\
- match: { path: "/console" }
  direct_response: { status: 308 }
  response_headers_to_add:
    - header: { key: location, value: "/console/" }
      append_action: OVERWRITE_IF_EXISTS_OR_ADD
"""


def console_files(root: Path = CONSOLE) -> dict[str, tuple[bytes, str]]:
    """URL path -> (bytes, content type) of the built console; empty when it is not built."""
    files: dict[str, tuple[bytes, str]] = {}
    if not (root / "index.html").is_file():
        return files
    for path in sorted(root.rglob("*")):
        ctype = _CONSOLE_TYPES.get(path.suffix)
        if path.is_file() and ctype:
            rel = path.relative_to(root).as_posix()
            url = "/console/" if rel == "index.html" else f"/console/{rel}"
            files[url] = (path.read_bytes(), ctype)
    return files


def _console_routes(auth_on: bool, root: Path = CONSOLE) -> str:
    files = console_files(root)
    if not files:
        return ""
    routes = [_CONSOLE_REDIRECT + (_CONSOLE_NO_AUTH if auth_on else "")]
    for url, (data, ctype) in files.items():
        routes.append(
            _CONSOLE_ROUTE.format(
                path=json.dumps(url),
                body=base64.b64encode(data).decode(),
                ctype=json.dumps(ctype),
                # assets carry a content hash in their names; the page must be fresh
                cache=json.dumps(
                    "no-cache" if url == "/console/" else "public, max-age=31536000, immutable"
                ),
                csp=json.dumps(_CONSOLE_CSP),
                no_auth=_CONSOLE_NO_AUTH if auth_on else "",
            )
        )
    return "".join(routes)


def _virtual_hosts(
    edge: EdgeSettings, auth_on: bool, clusters: frozenset[str] | None = None
) -> str:
    if auth_on:
        action, key = (
            "{ request_headers: { header_name: x-cj-subject, descriptor_key: client } }",
            "client",
        )
    else:
        action, key = "{ remote_address: {} }", "remote_address"
    routes = []
    for n, (prefix, cluster, timeout, budget_name) in enumerate(ROUTES + REFLECTION_ROUTES):
        if clusters is not None and cluster not in clusters:
            continue  # an optional service this stack does not run: its paths answer 404
        budget: RateBudget = getattr(edge, budget_name)
        limit = (
            _LIMIT.format(
                action=action,
                key=key,
                budget=budget_name,
                n=n,
                rate=budget.rate,
                burst=budget.burst,
            )
            if budget.rate
            else ""
        )
        routes.append(
            _ROUTE.format(prefix=json.dumps(prefix), cluster=cluster, timeout=timeout, limit=limit)
        )
    any_host = "*" in edge.hosts
    console = _console_routes(auth_on)
    text = _VIRTUAL_HOSTS.format(
        max_body=max([4096, *(len(d) for d, _ in console_files().values())]),
        console=textwrap.indent(console, " " * 6),
        domains=", ".join(json.dumps(h) for h in edge.hosts),
        routes=textwrap.indent("".join(routes), " " * 6).rstrip("\n"),
        foreign="" if any_host else _FOREIGN + (_FOREIGN_NO_AUTH if auth_on else ""),
    )
    return textwrap.indent(text, " " * 18).rstrip("\n")


def _indent(text: str) -> str:
    """Filter fragments are written flush left; the template's filter list is 18 deep."""
    return textwrap.indent(text, " " * 18)


def scope_regex(scope: str) -> str:
    """Matches a claim holding ``scope`` as a whole space-separated word (never a prefix or a
    lookalike). Envoy's safe_regex must match the whole claim, hence the optional words."""
    return "(.* )?" + re.escape(scope) + "( .*)?"


def _auth_parts(auth: AuthSettings | None, jwks_file: Path | None) -> dict[str, str]:
    if auth is None or auth.insecure:
        return {
            "AUTHN_FILTER": "",
            "RBAC_FILTER": "",
            "JWKS_CLUSTER": "",
            "SCOPE_HINT": "",
            "HEALTH_AUTH": ',"auth":"disabled","warning":"AUTHENTICATION IS OFF: anyone who '
            'reaches this port can ingest, read and change everything"',
        }
    q = json.dumps
    cluster = ""
    if auth.jwks_uri:
        url = urlsplit(auth.jwks_uri)
        host = url.hostname or ""
        https = url.scheme == "https"
        port = url.port or (443 if https else 80)
        jwks = (
            "        remote_jwks:\n"
            f"          http_uri: {{ uri: {q(auth.jwks_uri)}, cluster: jwks, timeout: 5s }}\n"
            f"          cache_duration: {int(auth.jwks_cache)}s\n"
            "          async_fetch: { fast_listener: false }\n"
            "          retry_policy: { num_retries: 3 }"
        )
        tls = _TLS.format(host=q(host)) if https else ""
        cluster = _JWKS_CLUSTER.format(host=q(host), port=port, tls=tls).rstrip("\n")
    else:
        path = auth.jwks_file or jwks_file
        if path is None:
            raise ValueError("a JWKS file or URI is needed when authentication is on")
        jwks = f"        local_jwks: {{ filename: {q(str(path))} }}"
    policies = "".join(
        _POLICY.format(
            scope=q(scope),
            permissions="".join(
                f"            - url_path: {{ path: {{ prefix: {q(p)} }} }}\n" for p in prefixes
            ).rstrip("\n"),
            regex=q(scope_regex(scope)),
        )
        for scope, prefixes in ROUTE_SCOPES.items()
    )
    return {
        "AUTHN_FILTER": _indent(
            _AUTHN.format(
                issuer=q(auth.issuer), audience=q(auth.audience), skew=auth.clock_skew, jwks=jwks
            )
        ),
        "RBAC_FILTER": _indent(
            _RBAC.format(
                policies=policies.rstrip("\n"),
                reflection="\n".join(
                    f"            - url_path: {{ path: {{ prefix: {q(p)} }} }}"
                    for p, *_ in REFLECTION_ROUTES
                ),
            )
        ),
        "JWKS_CLUSTER": cluster,
        "SCOPE_HINT": "ingest needs events:write, reads need read, rules, deliveries and "
        "dead letters and the audit log need admin",
        "HEALTH_AUTH": "",
    }


def _addresses(where: tuple[str, int] | Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    """One (host, port), or the list of a service's replicas."""
    if len(where) == 2 and isinstance(where[1], int):
        return [cast(tuple[str, int], where)]
    return list(cast(Sequence[tuple[str, int]], where))


def render(
    *,
    edge_port: int,
    admin_port: int,
    upstreams: Mapping[str, tuple[str, int] | Sequence[tuple[str, int]]],
    edge_address: str = "127.0.0.1",
    max_body_bytes: int = 1024 * 1024,
    health_interval: str = "1s",
    descriptor: Path = DESCRIPTOR,
    auth: AuthSettings | None = None,
    jwks_file: Path | None = None,
    edge: EdgeSettings | None = None,
) -> str:
    """``upstreams`` maps cluster name (ingestion, query, eventhandler, and relay when it
    runs as its own process) to (host, port), or to a list of them (the replicas of the
    service: every one an endpoint); /health needs one endpoint of each SERVING.
    ``auth`` None or insecure renders no authentication (and says so in /health); otherwise
    the JWKS is ``auth.jwks_uri``, ``auth.jwks_file`` or else ``jwks_file``. ``edge`` (default
    EdgeSettings()) sets rate budgets, host names, trusted proxies and overload bounds."""
    edge = edge or EdgeSettings()
    auth_on = auth is not None and not auth.insecure
    clusters = "".join(
        _CLUSTER.format(
            name=name,
            interval=health_interval,
            outlier=_OUTLIER if len(_addresses(where)) > 1 else "",
            endpoints="".join(
                _ENDPOINT.format(host=host, port=port) for host, port in _addresses(where)
            ).rstrip("\n"),
        )
        for name, where in upstreams.items()
    )
    return Template(TEMPLATE.read_text()).substitute(
        EDGE_ADDRESS=edge_address,
        EDGE_PORT=edge_port,
        ADMIN_PORT=admin_port,
        MAX_BODY_BYTES=max_body_bytes,
        DESCRIPTOR=str(descriptor),
        CLUSTERS=clusters.rstrip("\n"),
        HEALTH_SERVICES=", ".join(f'"{name}"' for name in upstreams),
        VIRTUAL_HOSTS=_virtual_hosts(edge, auth_on, frozenset(upstreams)),
        TRUSTED_HOPS=edge.trusted_hops,
        MAX_HEAP_BYTES=edge.max_heap_mb * 1024 * 1024,
        MAX_CONNECTIONS=edge.max_connections,
        **_auth_parts(auth, jwks_file),
    )
