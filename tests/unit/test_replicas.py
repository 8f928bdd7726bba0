"""Replicas of a service under `cornjacket up`: the --replicas/CJ_REPLICAS parse, each
replica's ports, and Envoy's clusters listing every replica (no processes but Envoy's
config validation)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from services.cli.envoy_config import render
from services.cli.main import build_parser
from services.cli.stack import Stack, settings_on_free_ports
from services.config.settings import Env, StackSettings, parse_replicas
from services.core.errors import ConfigError

ENVOY = Path(sys.executable).parent / "envoy"


def test_replicas_parse_counts_per_service() -> None:
    assert parse_replicas("relay=2, ingestion=3,eventhandler=2,actions=8") == {
        "relay": 2,
        "ingestion": 3,
        "eventhandler": 2,
        "actions": 8,
    }
    assert parse_replicas("") == {}
    assert StackSettings.from_env(Env({"CJ_REPLICAS": "query=2"})).replicas == {"query": 2}
    assert StackSettings.from_env(Env({})).replica_count("relay") == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("relay", "'relay' is not SERVICE=N"),
        ("relay=", "'relay=' is not SERVICE=N"),
        ("=2", "'=2' is not SERVICE=N"),
        ("broker=2", "unknown service 'broker'; one of ingestion, relay"),
        ("envoy=2", "unknown service 'envoy'"),
        ("relay=0", "relay='0': the number of replicas must be 1..8"),
        ("relay=9", "relay='9': the number of replicas must be 1..8"),
        ("relay=-1", "relay='-1': the number of replicas must be 1..8"),
        ("relay=two", "relay='two': the number of replicas must be 1..8"),
        ("relay=2,relay=3", "relay is named twice"),
    ],
)
def test_bad_replicas_are_refused_precisely(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="^CJ_REPLICAS: .*" + _re(message)):
        StackSettings.from_env(Env({"CJ_REPLICAS": text}))


def _re(text: str) -> str:
    import re

    return re.escape(text)


def test_up_refuses_bad_replicas_with_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["up", "--replicas", "relay=9"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --replicas: relay='9': the number of replicas must be 1..8" in err
    args = parser.parse_args(["up", "--replicas", "relay=2,actions=2"])
    assert args.replicas == {"relay": 2, "actions": 2}
    help_text = subprocess.run(
        [sys.executable, "-m", "services.cli.main", "up", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "--replicas SERVICE=N" in help_text and "relay=2,ingestion=2" in help_text


def test_each_replica_has_ports_of_its_own(tmp_path: Path) -> None:
    import dataclasses

    settings = dataclasses.replace(
        settings_on_free_ports(tmp_path), replicas={"relay": 3, "mqtt": 2}
    )
    stack = Stack(settings, say=lambda m: None)
    relays = stack.replicas["relay"]
    assert [r.name for r in relays] == ["relay", "relay.1", "relay.2"]
    # Replica 0 keeps the configured ports; the others get their own.
    assert relays[0].ports == {
        "CJ_RELAY_PORT": settings.relay_port,
        "CJ_RELAY_METRICS_PORT": settings.metrics_ports["relay"],
    }
    ports = [p for r in [*relays, *stack.replicas["mqtt"]] for p in r.ports.values()]
    assert len(ports) == len(set(ports))
    assert [r.name for r in stack.replicas["ingestion"]] == ["ingestion"]
    listing = stack.endpoints()
    assert "replica relay.2" in listing and "replica mqtt.1" in listing
    assert f"mqtt_port={stack.replicas['mqtt'][1].ports['CJ_MQTT_PORT']}" in listing


def test_envoy_lists_every_replica_and_ejects_a_dead_one(tmp_path: Path) -> None:
    text = render(
        edge_port=18080,
        admin_port=19901,
        upstreams={
            "ingestion": [("127.0.0.1", 50051), ("127.0.0.1", 50061)],
            "query": ("127.0.0.1", 50052),
            "eventhandler": ("127.0.0.1", 50053),
            "actions": [("127.0.0.1", 50056), ("127.0.0.1", 50066)],
        },
    )
    doc = yaml.safe_load(text)
    clusters = {c["name"]: c for c in doc["static_resources"]["clusters"]}
    ports = [
        e["endpoint"]["address"]["socket_address"]["port_value"]
        for e in clusters["ingestion"]["load_assignment"]["endpoints"][0]["lb_endpoints"]
    ]
    assert ports == [50051, 50061]
    assert clusters["ingestion"]["health_checks"][0]["grpc_health_check"] == {}
    outlier = clusters["ingestion"]["outlier_detection"]
    # A dead replica goes after a few refused connections, never after one slow answer,
    # and comes back to be health checked within half a minute however often it went.
    assert outlier["split_external_local_origin_errors"] is True
    assert outlier["consecutive_local_origin_failure"] >= 3
    assert outlier["enforcing_consecutive_local_origin_failure"] == 100
    assert outlier["max_ejection_time"] == "30s"
    # A service with one endpoint is never ejected: ejecting the only endpoint turns one
    # call that timed out (PostgreSQL slow) into 503s and an unhealthy /health for seconds.
    assert "outlier_detection" not in clusters["query"]
    assert "outlier_detection" not in clusters["eventhandler"]
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


def test_a_single_replica_stack_renders_no_outlier_detection(tmp_path: Path) -> None:
    from tests.unit.test_edge_auth import UPSTREAMS

    text = render(edge_port=18080, admin_port=19901, upstreams=UPSTREAMS)
    clusters = yaml.safe_load(text)["static_resources"]["clusters"]
    assert clusters and all("outlier_detection" not in c for c in clusters), [
        c["name"] for c in clusters if "outlier_detection" in c
    ]
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
