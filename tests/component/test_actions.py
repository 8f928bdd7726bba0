"""The action orchestrator as a real process: real broker in, real PostgreSQL, real HTTP out.

Events go straight onto the module's own topics; the API is called over gRPC on the
service's port. Short backoff and cooldown settings keep the tests quick.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
import uuid_utils
from confluent_kafka import Producer
from cornjacket.v1 import actions_pb2, actions_pb2_grpc
from cornjacket_sdk.webhooks import verify

from services.cli.embedded import EmbeddedBroker
from services.cli.processes import free_port
from services.core.events import Event
from services.infra.codec import encode_event
from services.infra.kafka import ensure_topics
from tests.support import eventually, fetch_one, service_process, unique
from tests.webhook_receiver import Receiver, Reply, receiver

pytestmark = pytest.mark.component

SECRET = "whsec_" + base64.b64encode(b"c" * 32).decode()


class Harness:
    def __init__(self, brokers: str, topic: str, stub: Any, db: str, hooks: Receiver) -> None:
        self.producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True})
        self.topic = topic
        self.api = stub
        self.db = db
        self.hooks = hooks

    def send(self, event: Event) -> None:
        self.producer.produce(
            self.topic, key=event.aggregate_id.encode(), value=encode_event(event)
        )
        self.producer.flush(10)

    def rule(self, path: str, **kw: Any) -> actions_pb2.Rule:
        req = actions_pb2.CreateRuleRequest(
            name=kw.pop("name", "r"),
            event_type_pattern=kw.pop("pattern", "sensor.reading"),
            condition=kw.pop("condition", ""),
            target=actions_pb2.WebhookTarget(url=self.hooks.url(path), secrets=[SECRET]),
        )
        rule: actions_pb2.Rule = self.api.CreateRule(req, timeout=5)
        return rule

    def deliveries(self, rule_id: str, status: str = "") -> list[actions_pb2.Delivery]:
        resp = self.api.ListDeliveries(
            actions_pb2.ListDeliveriesRequest(rule_id=rule_id, status=status, limit=100), timeout=5
        )
        return list(resp.deliveries)


def reading(value: float, event_id: str | None = None, agg: str = "dev-1") -> Event:
    now = datetime.now(UTC)
    return Event(
        event_id or str(uuid_utils.uuid7()),
        "sensor.reading",
        agg,
        now,
        now,
        {"value": value, "unit": "C"},
    )


@pytest.fixture(scope="module")
def actions(
    database: str, broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    topic = unique("t-sensor")
    ensure_topics(broker.bootstrap, [topic], partitions=2)
    port = free_port()
    env = {
        "CJ_ACTIONS_DATABASE_URL": database,
        "CJ_REDPANDA_BROKERS": broker.bootstrap,
        "CJ_ACTIONS_PORT": str(port),
        "CJ_ACTIONS_TOPICS": topic,
        "CJ_ACTIONS_CONSUMER_GROUP": unique("group"),
        "CJ_ACTIONS_POLL_TIMEOUT": "100ms",
        "CJ_ACTIONS_POLL_INTERVAL": "200ms",
        "CJ_ACTIONS_BACKOFF": "100ms,100ms,100ms,100ms,100ms",
        "CJ_ACTIONS_BACKOFF_JITTER": "0",
        "CJ_ACTIONS_RATE_LIMIT_PER_MINUTE": "0",
        "CJ_ACTIONS_DEDUPE_WINDOW": "0",
        "CJ_ACTIONS_BREAKER_THRESHOLD": "100",
        "CJ_ACTIONS_TIMEOUT": "2s",
        # The local receiver is an intended internal target; everything else private is
        # refused (blocking is on by default).
        "CJ_ACTIONS_ALLOWED_TARGETS": "127.0.0.1",
        "CJ_ACTIONS_SECRETS_KEY": base64.b64encode(b"k" * 32).decode(),
    }
    logs = tmp_path_factory.mktemp("actions-logs")
    with (
        receiver() as hooks,
        service_process("actions", env, logs, f"127.0.0.1:{port}"),
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        yield Harness(
            broker.bootstrap, topic, actions_pb2_grpc.ActionServiceStub(channel), database, hooks
        )


def test_matching_event_is_delivered_signed_and_redelivery_makes_no_second_job(
    actions: Harness,
) -> None:
    path = f"/{unique('hook')}"
    rule = actions.rule(path, condition="payload.value > 80")
    hot = reading(85)
    actions.send(reading(70))
    actions.send(hot)
    actions.send(hot)  # the bus re-delivers: same event_id
    got = eventually(lambda: actions.hooks.received(path), what="webhook")
    body = verify(SECRET, got[0].headers, got[0].body)
    assert body["rule_id"] == rule.rule_id and body["event"]["event_id"] == hot.event_id
    assert body["event"]["payload"] == {"value": 85, "unit": "C"}
    assert got[0].headers["webhook-id"] == body["delivery_id"]
    eventually(
        lambda: [d.status for d in actions.deliveries(rule.rule_id)] == ["delivered"],
        what="one delivered job",
    )
    assert fetch_one(
        actions.db,
        "SELECT count(*) FROM actions.deliveries WHERE rule_id = %s",
        (rule.rule_id,),
    ) == (1,)
    assert len(actions.hooks.received(path)) == 1


def test_exhausted_retries_fail_into_the_dlq_then_replay_and_discard(actions: Harness) -> None:
    path = f"/{unique('dlq')}"
    actions.hooks.script(path, default=Reply(500))
    rule = actions.rule(path, name="dlq")
    actions.send(reading(1))
    failed = eventually(lambda: actions.deliveries(rule.rule_id, "failed"), what="DLQ entry")
    d = failed[0]
    assert d.attempt_count == 6 and "gave up after 6 attempts" in d.last_error
    assert [a.outcome for a in d.attempts] == ["failure"] * 6
    assert all(a.status_code == 500 for a in d.attempts)

    actions.hooks.script(path, default=Reply(204))
    replayed = actions.api.ReplayDeliveries(
        actions_pb2.ReplayDeliveriesRequest(all_failed=True, rule_id=rule.rule_id), timeout=5
    )
    assert list(replayed.delivery_ids) == [d.delivery_id]
    done = eventually(
        lambda: [x for x in actions.deliveries(rule.rule_id, "delivered")], what="replayed"
    )[0]
    assert done.attempt_count == 7 and done.replay_count == 1
    assert len(actions.hooks.received(path)) == 7

    # Discard: only failed deliveries.
    actions.hooks.script(path, default=Reply(500))
    actions.send(reading(2))
    failed = eventually(lambda: actions.deliveries(rule.rule_id, "failed"), what="second failure")
    with pytest.raises(grpc.RpcError) as err:
        actions.api.DiscardDelivery(
            actions_pb2.DiscardDeliveryRequest(delivery_id=done.delivery_id), timeout=5
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    gone = actions.api.DiscardDelivery(
        actions_pb2.DiscardDeliveryRequest(delivery_id=failed[0].delivery_id), timeout=5
    )
    assert gone.status == "discarded"
    assert actions.deliveries(rule.rule_id, "failed") == []


def test_410_disables_the_rule_and_says_why(actions: Harness) -> None:
    path = f"/{unique('gone')}"
    actions.hooks.script(path, default=Reply(410))
    rule = actions.rule(path, name="gone")
    actions.send(reading(3))
    eventually(lambda: actions.deliveries(rule.rule_id, "failed"), what="failed job")
    got = actions.api.GetRule(actions_pb2.GetRuleRequest(rule_id=rule.rule_id), timeout=5)
    assert not got.enabled and "410 Gone" in got.disabled_reason
    assert len(actions.hooks.received(path)) == 1


def test_retry_after_is_honoured(actions: Harness) -> None:
    path = f"/{unique('busy')}"
    actions.hooks.script(path, Reply(429, headers={"Retry-After": "1"}), default=Reply(200))
    rule = actions.rule(path, name="busy")
    actions.send(reading(4))
    eventually(lambda: actions.deliveries(rule.rule_id, "delivered"), what="delivered")
    first, second = actions.hooks.received(path)
    # The backoff alone would retry after 100 ms.
    assert second.at - first.at >= 0.9


def test_rule_api_validation_and_secret_masking(actions: Harness) -> None:
    bad = actions_pb2.CreateRuleRequest(
        name="bad",
        event_type_pattern="sensor.reading",
        condition="payload.value >",
        target=actions_pb2.WebhookTarget(url="http://127.0.0.1:1/x"),
    )
    with pytest.raises(grpc.RpcError) as err:
        actions.api.CreateRule(bad, timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "condition: expected a value or a path" in str(err.value.details())

    created = actions.api.CreateRule(
        actions_pb2.CreateRuleRequest(
            name="gen",
            event_type_pattern="user.*",
            target=actions_pb2.WebhookTarget(url="http://127.0.0.1:1/x"),
        ),
        timeout=5,
    )
    assert created.generated_secret.startswith("whsec_")
    assert list(created.target.secrets) == [created.generated_secret[:10] + "…"]
    got = actions.api.GetRule(actions_pb2.GetRuleRequest(rule_id=created.rule_id), timeout=5)
    assert got.generated_secret == "" and json.dumps(list(got.target.secrets))


def test_connection_errors_and_timeouts_are_recorded_as_such(actions: Harness) -> None:
    dead_port = free_port()  # nothing listens there
    dead = actions.api.CreateRule(
        actions_pb2.CreateRuleRequest(
            name="dead",
            event_type_pattern="sensor.reading",
            condition="payload.value == 5",
            target=actions_pb2.WebhookTarget(url=f"http://127.0.0.1:{dead_port}/x"),
        ),
        timeout=5,
    )
    path = f"/{unique('late')}"
    actions.hooks.script(path, Reply(200, delay=3))  # longer than CJ_ACTIONS_TIMEOUT=2s
    late = actions.rule(path, name="late", condition="payload.value == 5")
    actions.send(reading(5))
    failed = eventually(lambda: actions.deliveries(dead.rule_id, "failed"), what="dead endpoint")
    assert {a.outcome for a in failed[0].attempts} == {"connection_error"}
    done = eventually(lambda: actions.deliveries(late.rule_id, "delivered"), what="late endpoint")
    assert [a.outcome for a in done[0].attempts] == ["timeout", "success"]
