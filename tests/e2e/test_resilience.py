"""Restarts and outages of a whole stack of its own (so other e2e tests are not disturbed)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.cli.stack import Stack
from tests.support import MqttDevice, bearer, eventually, fetch_one, running_stack, unique

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("resilience")


@pytest.fixture(scope="module")
def own_stack(data_dir: Path) -> Iterator[Stack]:
    # As `cornjacket up --insecure`: these tests also show that the HTTP contract without
    # authentication is the one it always was (no tokens, same answers).
    with running_stack(data_dir, {"CJ_LOG_FORMAT": "json"}, insecure=True) as s:
        yield s


def test_insecure_stack_needs_no_token_and_says_so(own_stack: Stack) -> None:
    assert own_stack.admin_token == "" and bearer(own_stack) == {}
    with httpx.Client(base_url=own_stack.edge_url, timeout=30) as http:
        health = http.get("/health")
        assert health.status_code == 200
        assert health.json()["auth"] == "disabled"
        assert health.json()["warning"].startswith("AUTHENTICATION IS OFF")
        r = http.post("/api/v1/events", json=reading(unique("insecure"), 1.0))
        assert r.status_code == 202, r.text
        missing = http.get("/api/v1/rules/00000000-0000-0000-0000-000000000000")
        assert missing.status_code == 404
        assert set(missing.json()) == {"code", "message", "details"}
        assert "www-authenticate" not in missing.headers


def reading(agg: str, value: float) -> dict[str, object]:
    return {
        "event_type": "sensor.reading",
        "aggregate_id": agg,
        "payload": {"value": value, "unit": "C"},
    }


def test_database_down_answers_503_then_recovers(own_stack: Stack) -> None:
    with httpx.Client(base_url=own_stack.edge_url, timeout=30, headers=bearer(own_stack)) as http:
        agg = unique("outage")
        assert http.post("/api/v1/events", json=reading(agg, 1.0)).status_code == 202
        own_stack.postgres.stop()
        try:
            r = http.post("/api/v1/events", json=reading(agg, 2.0))
            assert r.status_code == 503, r.text
            assert "unavailable" in r.json()["message"]
            # Each service notices on its own next check: wait until ingestion is named.
            body = eventually(
                lambda: (
                    lambda r: r.json() if "ingestion" in r.json().get("unhealthy", []) else None
                )(http.get("/health")),
                what="health names ingestion",
            )
            assert body["status"] == "unhealthy" and "ingestion" in body["message"]
        finally:
            own_stack.postgres.start()
        r = eventually(
            lambda: (lambda r: r if r.status_code == 202 else None)(
                http.post("/api/v1/events", json=reading(agg, 3.0))
            ),
            timeout=30,
            interval=0.5,
            what="ingest accepted again",
        )
        eid = r.json()["event_id"]
        p = eventually(
            lambda: (
                lambda r: (
                    r.json() if r.status_code == 200 and r.json()["last_event_id"] == eid else None
                )
            )(http.get(f"/api/v1/projections/sensor_state/{agg}")),
            timeout=30,
            what="projection after recovery",
        )
        assert p["state"]["value"] == 3.0
        eventually(lambda: http.get("/health").status_code == 200, timeout=30, what="healthy again")


def test_supervisor_brings_a_killed_broker_back(own_stack: Stack) -> None:
    """The in-memory broker dies: the supervisor restarts it and its clients, and events flow
    again (the handler rejoins its group on the new broker)."""
    from services.cli.supervisor import Supervisor

    said: list[str] = []
    supervisor = Supervisor(own_stack, say=said.append)
    assert own_stack.broker.child is not None
    own_stack.broker.child.kill()

    def recovered() -> bool:
        assert supervisor.tick(), said
        return own_stack.healthy() and not own_stack.dead()

    eventually(recovered, timeout=90, interval=0.5, what="stack healthy after the broker died")
    assert any("broker exited" in m for m in said) and "broker restarted" in said
    with httpx.Client(base_url=own_stack.edge_url, timeout=30, headers=bearer(own_stack)) as http:
        agg = unique("after-broker")
        eid = http.post("/api/v1/events", json=reading(agg, 7.0)).json()["event_id"]
        p = eventually(
            lambda: (lambda r: r.json() if r.status_code == 200 else None)(
                http.get(f"/api/v1/projections/sensor_state/{agg}")
            ),
            timeout=30,
            what="projection after the broker came back",
        )
        assert p["last_event_id"] == eid


def test_mqtt_stream_survives_ingestion_killed_mid_stream(own_stack: Stack) -> None:
    """Every publish the device saw acknowledged is stored exactly once, although the
    ingestion process was SIGKILLed mid-stream (the gateway holds acknowledgements and
    retries with the same idempotency keys until ingestion is back)."""
    agg = unique("mqtt-fault")
    total = 400
    dev = MqttDevice(own_stack.settings.mqtt_port, unique("fault-dev"))
    ingestion = own_stack.services["ingestion"]
    try:
        mids: dict[int, int] = {}

        def stream() -> None:
            for i in range(total):
                mids[
                    dev.publish(
                        f"cornjacket/v1/events/sensor.reading/{agg}", {"value": i, "unit": "C"}
                    )
                ] = i
                time.sleep(0.01)

        sender = threading.Thread(target=stream)
        sender.start()
        eventually(lambda: len(dev.acked) >= 50, what="the first 50 acknowledgements")
        ingestion.kill()
        acked_at_kill = len(dev.acked)
        time.sleep(1.0)
        ingestion.start()
        sender.join()
        eventually(lambda: len(dev.acked) == total, timeout=60, what="every publish acknowledged")
        assert acked_at_kill < total, "the kill came after the stream had ended"
        acked = {mids[m] for m in dev.acked}
        rows = eventually(
            lambda: (lambda r: r if len(r) >= total else None)(
                [
                    row[0]
                    for row in _all(
                        own_stack.postgres.url,
                        "SELECT (payload->>'value')::float::int FROM ingestion.event_store "
                        "WHERE aggregate_id = %s",
                        (agg,),
                    )
                ]
            ),
            timeout=60,
            what="every acknowledged publish in the event store",
        )
        assert acked <= set(rows)
        assert len(rows) == len(set(rows)) == total, "a retry created a second event"
        assert own_stack.dead() == []
    finally:
        dev.close()


def _all(url: str, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def test_restart_keeps_data_and_loses_no_accepted_event(own_stack: Stack, data_dir: Path) -> None:
    with httpx.Client(base_url=own_stack.edge_url, timeout=30, headers=bearer(own_stack)) as http:
        agg = unique("restart")
        ids = [
            http.post("/api/v1/events", json=reading(agg, float(i))).json()["event_id"]
            for i in range(20)
        ]
    # Stop right after the last accept: nothing acknowledged may be lost.
    own_stack.stop()
    again = Stack(own_stack.settings, extra_env={"CJ_LOG_FORMAT": "json"}, say=lambda m: None)
    again.start()
    try:
        url = again.postgres.url
        eventually(
            lambda: (
                fetch_one(
                    url,
                    "SELECT count(*) FROM ingestion.event_store WHERE event_id = ANY(%s::uuid[])",
                    (ids,),
                )
                == (20,)
            ),
            timeout=30,
            what="all 20 accepted events in the event store",
        )
        with httpx.Client(base_url=again.edge_url, timeout=30, headers=bearer(again)) as http:
            p = eventually(
                lambda: (
                    lambda r: (
                        r.json()
                        if r.status_code == 200 and r.json()["last_event_id"] == ids[-1]
                        else None
                    )
                )(http.get(f"/api/v1/projections/sensor_state/{agg}")),
                timeout=30,
                what="projection reflects the last event",
            )
            assert p["state"]["value"] == 19.0
        assert fetch_one(url, "SELECT count(*) FROM ingestion.outbox") == (0,)
    finally:
        again.stop()
