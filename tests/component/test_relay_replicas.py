"""Two relay processes on one outbox: SKIP LOCKED hands them disjoint rows."""

from __future__ import annotations

from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import grpc
import pytest
from cornjacket.v1 import ingestion_pb2, ingestion_pb2_grpc

from services.cli.embedded import EmbeddedBroker
from services.cli.processes import free_port
from services.infra.codec import to_value
from tests.support import consume_events, eventually, fetch_one, service_process, unique

pytestmark = pytest.mark.component


def test_two_relays_publish_every_event_exactly_once(
    database: str, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    api_port = free_port()
    common = {"CJ_INGESTION_DATABASE_URL": database, "CJ_REDPANDA_BROKERS": broker.bootstrap}
    with ExitStack() as stack:
        stack.enter_context(
            service_process(
                "ingestion",
                common | {"CJ_INGESTION_PORT": str(api_port), "CJ_INGESTION_RUN_RELAY": "false"},
                tmp_path / "api",
                f"127.0.0.1:{api_port}",
            )
        )
        for name in ("a", "b"):
            port = free_port()
            (tmp_path / name).mkdir()
            stack.enter_context(
                service_process(
                    "relay",
                    common | {"CJ_RELAY_PORT": str(port), "CJ_OUTBOX_BATCH_SIZE": "20"},
                    tmp_path / name,
                    f"127.0.0.1:{port}",
                )
            )
        stub = ingestion_pb2_grpc.IngestionServiceStub(
            grpc.insecure_channel(f"127.0.0.1:{api_port}")
        )
        prefix = unique("replica")
        ids: list[str] = []
        for round_ in range(4):
            resp = stub.IngestEvents(
                ingestion_pb2.IngestEventsRequest(
                    events=[
                        ingestion_pb2.IngestEventRequest(
                            event_type="sensor.reading",
                            aggregate_id=f"{prefix}-{round_}-{i}",
                            payload=to_value({"value": i, "unit": "C"}),
                        )
                        for i in range(250)
                    ]
                )
            )
            ids += [r.event_id for r in resp.results]
        eventually(
            lambda: fetch_one(database, "SELECT count(*) FROM ingestion.outbox") == (0,),
            timeout=60,
            what="outbox drained by two relays",
        )
    published = consume_events(
        broker.bootstrap,
        "sensor-events",
        lambda e: e.aggregate_id.startswith(prefix),
        count=len(ids) + 50,
        timeout=15,
    )
    counts = Counter(e.event_id for e in published)
    assert set(counts) == set(ids)
    assert max(counts.values()) == 1, [k for k, v in counts.items() if v > 1][:5]
    assert fetch_one(
        database,
        "SELECT count(*) FROM ingestion.event_store WHERE aggregate_id LIKE %s",
        (prefix + "%",),
    ) == (1000,)
