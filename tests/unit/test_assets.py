"""The data files a wheel carries (ADR 22; no processes): what setup.py copies is what
services/infra/assets.py looks for, and from a checkout they are the repository's own."""

from __future__ import annotations

import ast
from pathlib import Path

from services.infra import assets

ROOT = Path(__file__).resolve().parents[2]


def test_setup_packages_what_the_code_reads() -> None:
    tree = ast.parse((ROOT / "setup.py").read_text())
    [packaged] = [
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "ASSETS" for t in node.targets)
    ]
    assert tuple(packaged) == assets.PACKAGED
    for path in (assets.MIGRATIONS, assets.ENVOY_TEMPLATE, assets.DESCRIPTOR, assets.CONSOLE):
        assert any(path == assets.ROOT / rel for rel in assets.PACKAGED), path


def test_a_checkout_reads_its_own_files() -> None:
    assert assets.ROOT == ROOT
    assert (assets.MIGRATIONS / "ingestion").is_dir()
    assert assets.ENVOY_TEMPLATE.is_file() and assets.DESCRIPTOR.is_file()
    assert (assets.CONSOLE / "index.html").is_file()
    # the sdist carries them too
    manifest = (ROOT / "MANIFEST.in").read_text()
    for rel in assets.PACKAGED:
        assert rel in manifest, rel
