from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, cast

from services.cli.processes import StartError
from services.cli.stack import Stack
from services.cli.supervisor import MAX_RESTARTS, Supervisor


class FakeChild:
    def __init__(self, name: str) -> None:
        self.name = name
        self.log_path = Path("/nonexistent")
        self.up = True

    def alive(self) -> bool:
        return self.up

    def exit_code(self) -> int:
        return 1

    def tail(self, lines: int = 20) -> str:
        return "boom"


class FakeStack:
    def __init__(self, *children: FakeChild) -> None:
        self.kids = list(children)
        self.restarted: list[str] = []
        self.fail_restart = False

    def dead(self) -> list[Any]:
        return [c for c in self.kids if not c.alive()]

    def restart(self, child: FakeChild) -> None:
        if self.fail_restart:
            raise StartError("still broken")
        self.restarted.append(child.name)
        child.up = True


def make(stack: FakeStack, now: list[float], said: list[str]) -> Supervisor:
    return Supervisor(cast(Stack, stack), clock=lambda: now[0], say=said.append)


def test_dead_child_is_reported_then_restarted_after_backoff() -> None:
    pg = FakeChild("postgres")
    stack, now, said = FakeStack(pg), [0.0], list[str]()
    sup = make(stack, now, said)
    pg.up = False
    assert sup.tick()
    assert "postgres exited with code 1; restarting it in 1s" in said[0]
    assert stack.restarted == []
    now[0] = 1.5
    assert sup.tick()
    assert stack.restarted == ["postgres"] and said[-1] == "postgres restarted"


def test_crash_loop_stops_the_stack() -> None:
    svc = FakeChild("ingestion")
    stack, now, said = FakeStack(svc), [0.0], list[str]()
    sup = make(stack, now, said)
    for i in range(MAX_RESTARTS):
        svc.up = False
        assert sup.tick()
        now[0] += 31
        assert sup.tick()
        now[0] = i * 10.0 + 1  # keep all deaths inside the window
    svc.up = False
    assert not sup.tick()
    assert "died 6 times" in said[-1]


def test_failed_restart_counts_as_another_death() -> None:
    svc = FakeChild("query")
    stack, now, said = FakeStack(svc), [0.0], list[str]()
    stack.fail_restart = True
    sup = make(stack, now, said)
    svc.up = False
    sup.tick()
    now[0] = 2
    sup.tick()
    assert "could not restart query: still broken" in said[-1]
    sup.tick()
    assert "restarting it in 2s" in said[-1]


class GrowingBrokerStack(FakeStack):
    def __init__(self) -> None:
        super().__init__()
        self.rss: float | None = 100.0
        self.rotations = 0
        self.fail_rotation = False

    def broker_rss_mb(self) -> float | None:
        return self.rss

    def rotate_broker(self, *, why: str) -> bool:
        self.rotations += 1
        self.why = why
        if self.fail_rotation:
            raise StartError("the broker did not come up")
        self.rss = 10.0
        return True


def test_broker_over_its_memory_limit_is_swapped_at_most_every_check_interval() -> None:
    stack, now, said = GrowingBrokerStack(), [0.0], list[str]()
    sup = Supervisor(
        cast(Stack, stack), clock=lambda: now[0], say=said.append, broker_max_rss_mb=256
    )
    now[0] = 6.0
    assert sup.tick() and stack.rotations == 0  # 100 MB: under the limit
    stack.rss = 300.0
    now[0] = 7.0
    assert sup.tick() and stack.rotations == 0  # checked 1 s ago: not yet
    now[0] = 12.0
    assert sup.tick() and stack.rotations == 1
    assert stack.why == "it holds 300 MB (CJ_BROKER_MAX_RSS_MB=256)"
    now[0] = 20.0
    assert sup.tick() and stack.rotations == 1  # the new broker is small


def test_failed_broker_swap_is_reported_and_the_stack_keeps_running() -> None:
    stack, now, said = GrowingBrokerStack(), [0.0], list[str]()
    stack.rss, stack.fail_rotation = 300.0, True
    sup = Supervisor(
        cast(Stack, stack), clock=lambda: now[0], say=said.append, broker_max_rss_mb=256
    )
    now[0] = 6.0
    assert sup.tick()
    assert said == ["swapping the broker failed: the broker did not come up"]


def test_broker_limit_zero_never_checks() -> None:
    stack, now, said = GrowingBrokerStack(), [0.0], list[str]()
    stack.rss = 10_000.0
    sup = Supervisor(cast(Stack, stack), clock=lambda: now[0], say=said.append)
    now[0] = 100.0
    assert sup.tick() and stack.rotations == 0


def test_swap_broker_request_swaps_it_whatever_its_size() -> None:
    stack, now, said = GrowingBrokerStack(), [0.0], list[str]()
    asks = ["swap-broker"]

    def requests() -> list[str]:
        taken = list(asks)
        asks.clear()
        return taken

    sup = Supervisor(cast(Stack, stack), clock=lambda: now[0], say=said.append, requests=requests)
    assert sup.tick() and stack.rotations == 1 and stack.why == "as requested"
    assert sup.tick() and stack.rotations == 1


def test_run_ticks_until_halted_or_a_crash_loop() -> None:
    halt = threading.Event()
    halt.set()
    assert Supervisor(cast(Stack, FakeStack()), say=list[str]().append).run(halt)
    dying = FakeChild("relay")
    dying.up = False
    stack = FakeStack(dying)
    stack.fail_restart = True
    ticks = iter(range(0, 10_000, 5))  # five seconds pass per tick: backoffs elapse at once
    sup = Supervisor(cast(Stack, stack), clock=lambda: float(next(ticks)), say=list[str]().append)
    assert not sup.run(threading.Event(), interval=0)
