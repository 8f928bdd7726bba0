"""The soak's memory verdict: judged on PSS (shared pages counted once), RSS as a fallback."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.results import ProcSample
from bench.sampler import memory_growth


@dataclass
class Sample:
    procs: dict[str, ProcSample] = field(default_factory=dict)


def test_growth_uses_pss_so_touched_shared_buffers_do_not_read_as_a_leak() -> None:
    # RSS of a tree of backends climbs as each touches shared buffers; their PSS stays flat.
    samples = [
        Sample({"postgres": ProcSample(cpu_percent=10, rss_mb=400 + 50 * i, pss_mb=300)})
        for i in range(9)
    ]
    assert memory_growth(samples) == {"postgres": 0.0}


def test_growth_falls_back_to_rss_and_reads_old_result_files() -> None:
    old = ProcSample.from_dict({"cpu_percent": 5, "rss_mb": 60})
    assert old.pss_mb is None and old.memory_mb == 60
    samples = [Sample({"broker": ProcSample(cpu_percent=5, rss_mb=50 + 10 * i)}) for i in range(9)]
    assert memory_growth(samples) == {"broker": 60.0}
