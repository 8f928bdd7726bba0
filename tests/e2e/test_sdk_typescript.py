"""The TypeScript SDK (sdk/typescript, built by `make sdk-ts`) against the live stack."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from services.cli.stack import Stack

pytestmark = pytest.mark.e2e

SDK = Path(__file__).resolve().parents[2] / "sdk" / "typescript"


def _node() -> str:
    node = shutil.which("node")
    if node is None or not (SDK / "dist" / "index.js").exists():
        pytest.fail("the TypeScript SDK is not built: run `make sdk-ts` (make test does)")
    return node


def test_typescript_sdk_unit_tests() -> None:
    """The SDK's own tests without a stack (typed errors, stream retries, the UNAVAILABLE
    interceptor against a fake HTTP/2 server): test/unit.test.mjs."""
    done = subprocess.run(
        [_node(), "--test", "--test-timeout=60000", "test/unit.test.mjs"],
        cwd=SDK,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_typescript_sdk_ingests_and_reads_back(stack: Stack) -> None:
    node = _node()
    done = subprocess.run(
        [node, "test/live.mjs"],
        cwd=SDK,
        env={
            "CORNJACKET_URL": stack.edge_url,
            "CORNJACKET_TOKEN": stack.admin_token,
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"] and result["grpc"] and result["http"]
