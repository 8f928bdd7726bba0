"""Two orchestrator processes on one database and one consumer group: every matching event
becomes one job and one webhook, whichever replica consumed or claimed it."""

from __future__ import annotations

import json
import time
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
import uuid_utils
from confluent_kafka import Producer
from cornjacket.v1 import actions_pb2, actions_pb2_grpc

from services.cli.embedded import EmbeddedBroker
from services.cli.processes import free_port
from services.core.events import Event
from services.infra.codec import encode_event
from services.infra.kafka import ensure_topics
from tests.support import eventually, fetch_one, service_process, unique
from tests.webhook_receiver import receiver

pytestmark = pytest.mark.component


def test_two_replicas_deliver_every_event_exactly_once(
    database: str, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    topic = unique("t-replicas")
    ensure_topics(broker.bootstrap, [topic], partitions=4)
    group = unique("group")
    ports = [free_port(), free_port()]
    with ExitStack() as stack:
        hooks = stack.enter_context(receiver())
        for i, port in enumerate(ports):
            (tmp_path / str(i)).mkdir()
            stack.enter_context(
                service_process(
                    "actions",
                    {
                        "CJ_ACTIONS_DATABASE_URL": database,
                        "CJ_REDPANDA_BROKERS": broker.bootstrap,
                        "CJ_ACTIONS_PORT": str(port),
                        "CJ_ACTIONS_TOPICS": topic,
                        "CJ_ACTIONS_CONSUMER_GROUP": group,
                        "CJ_ACTIONS_POLL_TIMEOUT": "100ms",
                        "CJ_ACTIONS_POLL_INTERVAL": "100ms",
                        "CJ_ACTIONS_RATE_LIMIT_PER_MINUTE": "0",
                        "CJ_ACTIONS_DEDUPE_WINDOW": "0",
                        "CJ_ACTIONS_ALLOWED_TARGETS": "127.0.0.1",  # the local receiver
                        # Both replicas share one key for the sealed signing secrets.
                        "CJ_ACTIONS_SECRETS_KEY": "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=",
                    },
                    tmp_path / str(i),
                    f"127.0.0.1:{port}",
                )
            )
        channel = stack.enter_context(grpc.insecure_channel(f"127.0.0.1:{ports[0]}"))
        api = actions_pb2_grpc.ActionServiceStub(channel)
        path = f"/{unique('replicas')}"
        rule = api.CreateRule(
            actions_pb2.CreateRuleRequest(
                name="replicas",
                event_type_pattern="sensor.*",
                target=actions_pb2.WebhookTarget(url=hooks.url(path)),
            ),
            timeout=5,
        )
        producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
        now = datetime.now(UTC)
        ids = []
        for i in range(40):
            event = Event(
                str(uuid_utils.uuid7()), "sensor.reading", f"dev-{i % 8}", now, now, {"value": i}
            )
            ids.append(event.event_id)
            producer.produce(topic, key=event.aggregate_id.encode(), value=encode_event(event))
        producer.flush(10)
        eventually(lambda: len(hooks.received(path)) >= 40, timeout=30, what="40 webhooks")
        eventually(
            lambda: (
                fetch_one(
                    database,
                    "SELECT count(*) FROM actions.deliveries WHERE rule_id = %s AND status = 'delivered'",
                    (rule.rule_id,),
                )
                == (40,)
            ),
            what="40 delivered jobs",
        )
        time.sleep(0.5)  # a stray duplicate would arrive by now
        ids_seen = Counter(r.headers["webhook-id"] for r in hooks.received(path))
        assert len(ids_seen) == 40 and set(ids_seen.values()) == {1}
        events_seen = {json.loads(r.body)["event"]["event_id"] for r in hooks.received(path)}
        assert events_seen == set(ids)
