"""The built console (gen/console, issue 19): the JavaScript a first visit loads stays under
200 KiB gzipped; the chart library is loaded with the device page only."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "gen" / "console"
BUDGET = 200 * 1024


def initial_scripts(index: str) -> list[Path]:
    """The entry script and the modules it preloads, as index.html names them."""
    urls = re.findall(r'<script[^>]*type="module"[^>]*src="([^"]+)"', index)
    urls += re.findall(r'<link[^>]*rel="modulepreload"[^>]*href="([^"]+)"', index)
    return [CONSOLE / u.removeprefix("/console/") for u in urls]


def test_the_initial_javascript_is_under_200_kib_gzipped() -> None:
    scripts = initial_scripts((CONSOLE / "index.html").read_text())
    assert scripts, "index.html names no module script"
    size = sum(len(gzip.compress(p.read_bytes(), 9)) for p in scripts)
    assert size <= BUDGET, f"{size / 1024:.1f} KiB gzipped > 200 KiB"


def test_the_chart_library_is_not_in_the_initial_javascript() -> None:
    initial = initial_scripts((CONSOLE / "index.html").read_text())
    lazy = [p for p in (CONSOLE / "assets").glob("*.js") if p not in initial]
    assert any(b"u-over" in p.read_bytes() for p in lazy), (
        "uPlot (its u-over class) in a lazy chunk"
    )
    assert not any(b"u-over" in p.read_bytes() for p in initial)
