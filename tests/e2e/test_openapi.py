"""The generated OpenAPI document matches what Envoy serves: schemathesis fuzzes every
operation of gen/openapi/openapi.json against the live stack and must find no 5xx and no
response (status, content type, body) outside the document."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from services.cli.stack import Stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,response_headers_conformance"
)


def test_fuzzing_the_http_api_finds_no_5xx_and_no_schema_violation(
    stack: Stack, tmp_path: Path
) -> None:
    st = Path(sys.executable).parent / "st"
    done = subprocess.run(
        [
            str(st),
            "run",
            str(ROOT / "gen" / "openapi" / "openapi.json"),
            "--url",
            stack.edge_url,
            "--header",
            f"Authorization: Bearer {stack.admin_token}",
            "--checks",
            CHECKS,
            "--max-examples",
            "25",
            "--request-timeout",
            "20",
            "--generation-deterministic",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "passed" in done.stdout
