"""Only what pyproject.toml cannot say: a wheel carries the platform's data files (the
migrations, the Envoy template, the descriptor set, the built console) as package data in
services/_assets, where services/infra/assets.py finds them (ADR 22). They stay where they
are in the repository (make gen, docker-compose and deploy/ use those paths); an editable
install reads them in place.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# Keep in step with services/infra/assets.py PACKAGED (a unit test compares them).
ASSETS = ("migrations", "envoy/envoy.yaml.tmpl", "gen/envoy/cornjacket.pb", "gen/console")


class BuildPyWithAssets(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's files
        dest = Path(self.build_lib) / "services" / "_assets"
        for rel in ASSETS:
            src = ROOT / rel
            if not src.exists():
                raise SystemExit(f"cannot build the wheel: {rel} is missing (run `make gen`)")
            target = dest / rel
            if src.is_dir():
                shutil.copytree(src, target, dirs_exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)


setup(cmdclass={"build_py": BuildPyWithAssets})
