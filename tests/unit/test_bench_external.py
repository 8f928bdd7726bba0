"""Finding a running stack's processes for `bench --edge` (bench/external.py)."""

from __future__ import annotations

import pytest

from bench.external import _name


@pytest.mark.parametrize(
    ("cmdline", "exe", "parent", "expected"),
    [
        (
            ["/v/bin/python", "-m", "services.cli.main", "serve", "ingestion"],
            "python",
            "bash",
            "ingestion",
        ),
        (["/v/bin/cornjacket", "serve", "relay"], "cornjacket", "cornjacket", "relay"),
        (["/v/bin/cornjacket", "serve", "nonsense"], "cornjacket", "bash", None),
        (["/p/bin/postgres", "-D", "/data"], "postgres", "cornjacket", "postgres"),
        (["postgres: postgres cornjacket 127.0.0.1(1) idle"], "postgres", "postgres", None),
        (
            ["/root/.calfkit/bin/tansu-v0.6.0", "broker", "--listener-url", "x"],
            "tansu-v0.6.0",
            "x",
            "broker",
        ),
        (["/v/lib/envoy/_bin/envoy", "-c", "envoy.yaml"], "envoy", "cornjacket", "envoy"),
        (["/usr/bin/vim", "serve"], "vim", "bash", None),
        ([], "kworker", "kthreadd", None),
    ],
)
def test_process_names(cmdline: list[str], exe: str, parent: str, expected: str | None) -> None:
    assert _name(cmdline, exe, parent) == expected
