"""Render envoy/envoy.yaml.tmpl with this stack's ports and paths."""

from __future__ import annotations

from pathlib import Path
from string import Template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "envoy" / "envoy.yaml.tmpl"
DESCRIPTOR = ROOT / "gen" / "envoy" / "cornjacket.pb"

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
      load_assignment:
        cluster_name: {name}
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address: {{ address: {host}, port_value: {port} }}
"""


def render(
    *,
    edge_port: int,
    admin_port: int,
    upstreams: dict[str, tuple[str, int]],
    edge_address: str = "127.0.0.1",
    max_body_bytes: int = 1024 * 1024,
    health_interval: str = "1s",
    descriptor: Path = DESCRIPTOR,
) -> str:
    """``upstreams`` maps cluster name (ingestion, query, eventhandler, and relay when it
    runs as its own process) to (host, port); /health needs every one of them SERVING."""
    clusters = "".join(
        _CLUSTER.format(name=name, host=host, port=port, interval=health_interval)
        for name, (host, port) in upstreams.items()
    )
    return Template(TEMPLATE.read_text()).substitute(
        EDGE_ADDRESS=edge_address,
        EDGE_PORT=edge_port,
        ADMIN_PORT=admin_port,
        MAX_BODY_BYTES=max_body_bytes,
        DESCRIPTOR=str(descriptor),
        CLUSTERS=clusters.rstrip("\n"),
        HEALTH_SERVICES=", ".join(f'"{name}"' for name in upstreams),
    )
