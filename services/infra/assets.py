"""Where the platform's data files are: the migrations, the Envoy template, the descriptor set
Envoy transcodes with, and the built console (issue 19, ADR 22).

From a checkout (and its editable install) they are the repository's own files. A wheel
carries copies as package data in ``services/_assets``, in the same layout (setup.py puts
them there when it builds), so `pip install .` and then `cornjacket up` work anywhere.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_PACKAGED = Path(str(resources.files("services"))) / "_assets"
_CHECKOUT = Path(__file__).resolve().parents[2]

# The wheel's copies when they are there; a checkout never has services/_assets (.gitignore).
ROOT = _PACKAGED if _PACKAGED.is_dir() else _CHECKOUT
MIGRATIONS = ROOT / "migrations"
ENVOY_TEMPLATE = ROOT / "envoy" / "envoy.yaml.tmpl"
DESCRIPTOR = ROOT / "gen" / "envoy" / "cornjacket.pb"
CONSOLE = ROOT / "gen" / "console"

# What setup.py copies into services/_assets (paths relative to the repository).
PACKAGED = ("migrations", "envoy/envoy.yaml.tmpl", "gen/envoy/cornjacket.pb", "gen/console")
