"""One watcher on the live tail for the whole `make bench` run (issue 20).

A child process (its own interpreter: its reading does not share the harness's GIL with the
sampler, and its CPU counts as the load's) opens WatchEvents through the edge with no filter
and reads it to the end of the run, printing one JSON line per second with the events read
so far, and one per stream that ended (the server's WatchEnd reason, or the gRPC status):
then it resumes from the last position, so a cut-off is reported and the watch goes on.
The parent (``Watcher``) reads those lines; ``snapshot()`` gives the figures so far.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import grpc
from cornjacket.v1 import watch_pb2, watch_pb2_grpc

from services.cli.auth import edge_channel


@dataclass
class WatchSnapshot:
    events: int = 0
    # Events whose id the stream had delivered before (a watch stream must not repeat one).
    repeated: int = 0
    # Events by type, for what a share above 100 % of the load is (ai.anomaly, ...).
    types: dict[str, int] = field(default_factory=dict)
    cuts: list[str] = field(default_factory=list)  # "t=12.3s: reason", oldest first
    alive: bool = True


class Watcher:
    """Starts the child; ``stop()`` ends it. Thread-safe snapshots."""

    def __init__(self, edge: str, token: str) -> None:
        self._snap = WatchSnapshot()
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.watcher", "--edge", edge],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdin is not None
        self._proc.stdin.write(token + "\n")  # not on the command line (ps shows it)
        self._proc.stdin.close()
        self._reader = threading.Thread(target=self._read, name="bench-watcher", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                self._snap.events = int(msg.get("events", self._snap.events))
                self._snap.repeated = int(msg.get("repeated", self._snap.repeated))
                if isinstance(msg.get("types"), dict):
                    self._snap.types = {str(k): int(v) for k, v in msg["types"].items()}
                if "cut" in msg:
                    self._snap.cuts.append(str(msg["cut"]))
        with self._lock:
            self._snap.alive = False

    def snapshot(self) -> WatchSnapshot:
        with self._lock:
            return WatchSnapshot(
                events=self._snap.events,
                repeated=self._snap.repeated,
                types=dict(self._snap.types),
                cuts=list(self._snap.cuts),
                alive=self._snap.alive,
            )

    def stop(self) -> WatchSnapshot:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._reader.join(timeout=10)
        return self.snapshot()


def watch_note(before: WatchSnapshot, after: WatchSnapshot, accepted: int) -> str:
    """What the watcher saw during one scenario, for its notes."""
    got = after.events - before.events
    share = f" ({got / accepted:.0%} of the accepted events)" if accepted else ""
    cuts = after.cuts[len(before.cuts) :]
    text = f"live-tail watcher read {got:,} events{share}"
    repeated = after.repeated - before.repeated
    text += f", {repeated:,} of them repeated" if repeated else ", none repeated"
    types = {k: n - before.types.get(k, 0) for k, n in after.types.items()}
    types = {k: n for k, n in types.items() if n}
    if len(types) > 1:
        text += " (" + ", ".join(f"{k} {n:,}" for k, n in sorted(types.items())) + ")"
    if cuts:
        reasons: dict[str, int] = {}
        for cut in cuts:  # "t=12.1s: reason"
            reason = cut.partition(": ")[2]
            reasons[reason] = reasons.get(reason, 0) + 1
        text += f"; CUT OFF {len(cuts)}x (first {cuts[0].partition(':')[0]}): " + "; ".join(
            f"{r} x{n}" for r, n in reasons.items()
        )
    if not after.alive:
        text += "; the watcher process is gone"
    elif accepted and got < STALLED * accepted and not cuts:
        text += "; STALLED: the stream stayed open but delivered almost nothing"
    return text


# A watcher with no filter should read about every accepted event; below this share of them,
# with no cut-off reported, the stream stalled (the note says so).
STALLED = 0.5


def _run(edge: str, token: str) -> None:
    t0 = time.monotonic()
    events = 0
    repeated = 0
    seen: set[str] = set()  # every event id delivered (~100 bytes each: the load's memory)
    types: dict[str, int] = {}
    position = ""
    last_report = 0.0

    def say(**msg: object) -> None:
        print(
            json.dumps({"events": events, "repeated": repeated, "types": types, **msg}),
            flush=True,
        )

    while True:
        reason = ""
        with edge_channel(edge, token) as channel:
            stub = watch_pb2_grpc.WatchServiceStub(channel)
            try:
                for msg in stub.WatchEvents(watch_pb2.WatchEventsRequest(position=position)):
                    if msg.position:
                        position = msg.position
                    item = msg.WhichOneof("item")
                    if item == "event":
                        events += 1
                        event_id = msg.event.event_id
                        if event_id in seen:
                            repeated += 1
                        else:
                            seen.add(event_id)
                        kind = msg.event.event_type
                        types[kind] = types.get(kind, 0) + 1
                    elif item == "end":
                        reason = watch_pb2.WatchEndReason.Name(msg.end.reason)
                        reason += f" {msg.end.message}".rstrip()
                    now = time.monotonic()
                    if now - last_report >= 1.0:
                        last_report = now
                        say()
                reason = reason or "the stream ended without an end message"
            except grpc.RpcError as e:
                reason = f"{e.code().name}: {e.details()}"
        say(cut=f"t={time.monotonic() - t0:.1f}s: {reason}")
        if "FAILED_PRECONDITION" in reason:
            position = ""  # older than the bus keeps (a fresh broker): from now on
        time.sleep(1.0)  # a retry's pause before reopening, not a synchronisation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--edge", required=True, help="Envoy host:port")
    args = parser.parse_args()
    token = sys.stdin.readline().strip()
    with contextlib.suppress(KeyboardInterrupt):
        _run(args.edge, token)


if __name__ == "__main__":
    main()
