"""Regenerate gen/ from proto/: Python stubs, the Envoy descriptor set, the OpenAPI document
(scripts/openapi.py), the bus's AsyncAPI document (scripts/asyncapi.py) and the TypeScript
stubs of the SDK (protoc-gen-es through buf, both from node_modules).

One command (`make gen`) so CI can regenerate and diff: gen/ must never drift from proto/.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"
GEN = ROOT / "gen"


def main() -> int:
    protos = sorted(str(p.relative_to(PROTO)) for p in PROTO.rglob("*.proto"))
    # google/api/*.proto are vendored in third_party/ (buf and protoc read the same copy).
    py_out = GEN / "python"
    envoy_out = GEN / "envoy"
    shutil.rmtree(py_out / "cornjacket", ignore_errors=True)
    py_out.mkdir(parents=True, exist_ok=True)
    envoy_out.mkdir(parents=True, exist_ok=True)
    includes = [
        f"-I{PROTO}",
        f"-I{ROOT / 'third_party' / 'googleapis'}",
        f"-I{Path(grpc_tools.__file__).parent / '_proto'}",
    ]
    args = [
        "grpc_tools.protoc",
        *includes,
        f"--python_out={py_out}",
        f"--pyi_out={py_out}",
        f"--grpc_python_out={py_out}",
        f"--descriptor_set_out={envoy_out / 'cornjacket.pb'}",
        "--include_imports",
        *protos,
    ]
    rc = int(protoc.main(args))
    if rc != 0:
        print(f"protoc failed with exit code {rc}", file=sys.stderr)
        return rc
    for pkg in {(py_out / p).parent for p in protos}:
        while pkg != py_out:
            (pkg / "__init__.py").touch()
            (pkg / "py.typed").touch()
            pkg = pkg.parent
    from openapi import main as openapi  # after protoc: it reads the descriptor set

    if openapi() != 0:
        return 1
    from asyncapi import main as asyncapi  # the bus's topics (issue 19), same descriptor set

    if asyncapi() != 0:
        return 1
    ts_out = GEN / "typescript"
    shutil.rmtree(ts_out, ignore_errors=True)
    buf = ROOT / "node_modules" / ".bin" / "buf"
    if not buf.exists():
        print("node_modules is missing: run `make gen` (it installs buf and protoc-gen-es)")
        return 1
    done = subprocess.run([str(buf), "generate"], cwd=ROOT, check=False)
    if done.returncode != 0:
        print(f"buf generate failed with exit code {done.returncode}", file=sys.stderr)
        return done.returncode
    if console() != 0:
        return 1
    print(
        f"generated {len(protos)} protos into {py_out}, {envoy_out / 'cornjacket.pb'} and {ts_out}"
    )
    return 0


CONSOLE = ROOT / "console"
# Issue 19: the console's initial JavaScript stays under this, gzipped.
CONSOLE_JS_BUDGET = 200 * 1024


def console() -> int:
    """Build the console (console/, Vite) into gen/console and check its size budget."""
    vite = CONSOLE / "node_modules" / ".bin" / "vite"
    if not vite.exists():
        print("console/node_modules is missing: run `make gen` (it installs the console's tools)")
        return 1
    done = subprocess.run(["npm", "run", "--silent", "build"], cwd=CONSOLE, check=False)
    if done.returncode != 0:
        print(f"console build failed with exit code {done.returncode}", file=sys.stderr)
        return done.returncode
    out = GEN / "console"
    # every chunk counts (lazy ones too: an upper bound of what a first visit loads;
    # tests/unit/test_console_bundle.py checks the initial ones alone)
    initial = sum(len(gzip.compress(p.read_bytes(), 9)) for p in out.glob("assets/*.js"))
    print(f"console: JavaScript {initial / 1024:.1f} KiB gzipped, all chunks (budget 200 KiB)")
    if initial > CONSOLE_JS_BUDGET:
        print("console: over the 200 KiB gzipped budget (issue 19)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
