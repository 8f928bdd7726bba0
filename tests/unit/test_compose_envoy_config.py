"""docker-compose.yml's envoy-config command parses with the real CLI and names every
upstream the edge routes to (review: `inference=...` had lost its `--upstream`, so the
container would exit with "unrecognized arguments" and the edge never start)."""

from __future__ import annotations

from pathlib import Path

import yaml

from services.cli.main import build_parser
from services.cli.stack import ENVOY_UPSTREAMS

ROOT = Path(__file__).resolve().parents[2]


def envoy_config_command() -> list[str]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    commands = [
        [str(a) for a in svc["command"]]
        for svc in compose["services"].values()
        if isinstance(svc.get("command"), list) and svc["command"][:1] == ["envoy-config"]
    ]
    assert len(commands) == 1, commands
    return commands[0]


def test_the_compose_envoy_config_command_parses_and_names_every_upstream() -> None:
    args = build_parser().parse_args(envoy_config_command())
    named = {name for name, _ in args.upstream or ()}
    # Compose runs the relay inside the ingestion container (no cluster of its own).
    assert named == set(ENVOY_UPSTREAMS) - {"relay"}
