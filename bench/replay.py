"""Replay benchmark: `cornjacket replay` over a 100k-event store (make bench-replay).

Starts its own embedded PostgreSQL, stores a synthetic history, folds it into projections
with the live handler's own code (the "live" projections), then times the rebuild and
checks that the rebuilt projections equal the live ones.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.histories import apply_live, history, store_events
from services.cli.embedded import EmbeddedPostgres
from services.cli.processes import env_with, free_port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--aggregates", type=int, default=5_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cj-replay-") as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "pg", free_port(), Path(tmp) / "pg.log")
        pg.start()
        try:
            url = pg.url
            t0 = time.monotonic()
            events = history(args.events, args.aggregates)
            store_events(url, events)
            print(f"stored {len(events):,} events in {time.monotonic() - t0:.1f}s", flush=True)
            t0 = time.monotonic()
            apply_live(url, events)
            print(f"live projections built in {time.monotonic() - t0:.1f}s", flush=True)
            env = env_with({"CJ_INGESTION_DATABASE_URL": url, "CJ_EVENTHANDLER_DATABASE_URL": url})
            cmd = [sys.executable, "-m", "services.cli.main", "replay"]
            t0 = time.monotonic()
            done = subprocess.run(cmd, env=env, check=False)
            wall = time.monotonic() - t0
            check = subprocess.run(
                [*cmd, "--check"], env=env, check=False, capture_output=True, text=True
            )
            print(check.stdout.strip().splitlines()[0])
            same = check.returncode == 0
            print(
                f"\nreplay of {len(events):,} events: {wall:.1f}s wall "
                f"({len(events) / wall:,.0f} events/s including start-up); "
                f"projections identical to the live ones: {'yes' if same else 'NO'}"
            )
            return 0 if done.returncode == 0 and same else 1
        finally:
            pg.stop()


if __name__ == "__main__":
    sys.exit(main())
