"""The Python SDK as its own distribution: `pip install ./sdk/python` into a fresh virtualenv,
then a five-line script ingests an event and reads its projection through Envoy."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from services.cli.stack import Stack
from tests.support import unique

pytestmark = pytest.mark.e2e

SDK = Path(__file__).resolve().parents[2] / "sdk" / "python"

SCRIPT = """
import asyncio, sys, time
from datetime import datetime
from cornjacket.v1 import actions_pb2
from cornjacket_sdk import (AsyncClient, Client, Event, InvalidArgument, NotFound, Projection,
    Unauthenticated, event)
with Client(sys.argv[1], token=sys.argv[3]) as cj:
    accepted = cj.ingest(event("sensor.reading", sys.argv[2], {"value": 7.5, "unit": "C"}))
    for _ in range(100):
        try:
            p = cj.get_projection("sensor_state", sys.argv[2]); break
        except NotFound:
            time.sleep(0.1)
    assert p.last_event_id == accepted.event_id, (p, accepted)
    assert isinstance(p, Projection) and p.state == {"value": 7.5, "unit": "C"}, p
    assert isinstance(p.last_event_timestamp, datetime) and p.last_event_timestamp.tzinfo
    assert cj.lineage(accepted.event_id).hops[0].stage == "accepted"
    try:
        cj.get_projection("Bad-Type", "x"); raise AssertionError("accepted")
    except InvalidArgument as e:
        assert "projection_type" in e.message, e
    rule = cj.actions.CreateRule(actions_pb2.CreateRuleRequest(name="sdk", event_type_pattern="sdk.x",
        target={"url": "http://127.0.0.1:9/never"}), **cj.call_options())
    page = cj.list_audit(since="2000-01-01T00:00:00Z", page_size=100)
    while not any(r.target == rule.rule_id for r in page.records) and page.next_page_token:
        page = cj.list_audit(since="2000-01-01T00:00:00Z", page_size=100,
                             page_token=page.next_page_token)
    assert any(r.target == rule.rule_id and r.outcome == "OK" for r in page.records)
    # a stream, synchronously: the current state of the projection first
    with cj.watch_projection("sensor_state", sys.argv[2]) as stream:
        assert next(stream).state["value"] == 7.5
with Client(sys.argv[1], token="not-a-token") as anon:
    try:
        anon.get_projection("sensor_state", sys.argv[2]); raise AssertionError("accepted")
    except Unauthenticated:
        pass
async def main():
    device = sys.argv[2] + "-live"
    async with AsyncClient(sys.argv[1], token=sys.argv[3]) as ac:
        r = await ac.ingest(event("sensor.reading", sys.argv[2], {"value": 8.5, "unit": "C"}))
        assert r.status == "accepted"
        events = ac.watch_events(event_type_prefix="sensor.", aggregate_id=device)
        await events.start()  # the server reads from here: what is sent now is on it
        sent = [(await ac.ingest(event("sensor.reading", device, {"value": n, "unit": "C"}))).event_id
                for n in range(3)]
        got = []
        async for ev in events:
            assert isinstance(ev, Event) and isinstance(ev.event_time, datetime)
            got.append(ev.event_id)
            if len(got) == 1:
                after_first = events.position
            if len(got) == 3:
                break
        events.cancel()
        assert got == sent, (got, sent)
        resumed = ac.watch_events(aggregate_id=device, position=after_first)
        again = []
        async for ev in resumed:
            again.append(ev.event_id)
            if len(again) == 2:
                break
        resumed.cancel()
        assert again == sent[1:], (again, sent)
        states = ac.watch_projection("sensor_state", device)
        async for state in states:
            if state.state["value"] == 2:
                break
        states.cancel()
asyncio.run(main())
print("ok", accepted.event_id)
"""


def test_pip_installed_sdk_ingests_and_reads_back(stack: Stack, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(SDK)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    done = subprocess.run(
        [
            str(python),
            "-c",
            SCRIPT,
            f"127.0.0.1:{stack.settings.edge_port}",
            unique("sdk-py"),
            stack.admin_token,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok ")
    assert sys.executable not in done.stdout
