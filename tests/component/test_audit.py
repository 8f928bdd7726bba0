"""The audit log (ADR 16) at its owners: the action orchestrator as a real process, the event
handler's DLQ API on a real gRPC server, the operator commands as a user runs them; every
kind of admin call, failures included, against a real PostgreSQL."""

from __future__ import annotations

import base64
import getpass
from collections.abc import Iterator
from concurrent import futures
from datetime import UTC, datetime
from typing import Any

import grpc
import psycopg
import pytest
import uuid_utils
from cornjacket.v1 import (
    actions_pb2,
    actions_pb2_grpc,
    audit_pb2,
    audit_pb2_grpc,
    dlq_pb2,
    dlq_pb2_grpc,
)
from psycopg.rows import dict_row

from bench.histories import history, store_events
from services.cli.embedded import EmbeddedBroker
from services.cli.processes import free_port
from services.core.events import Event
from services.eventhandler.dead_letters import DeadLetterService
from services.eventhandler.dlq_api import DeadLetterServicer
from services.eventhandler.dlq_store import PostgresDeadLetterStore
from services.eventhandler.projectors import default_registry
from services.infra import migrations
from services.infra.audit import SyncAuditLog, SyncAuditLogServicer
from services.infra.codec import decode_event, encode_event
from tests.support import cornjacket, service_process, unique

pytestmark = pytest.mark.component

SECRET = "whsec_" + base64.b64encode(b"a" * 32).decode()
SUBJECT = "alice@example.com"


def meta(request_id: str) -> list[tuple[str, str]]:
    """What Envoy adds for a verified admin token."""
    return [("x-cj-subject", SUBJECT), ("x-request-id", request_id)]


def rows(db: str, schema: str, request_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(db, row_factory=dict_row) as conn:
        return conn.execute(
            f"SELECT * FROM {schema}.audit WHERE request_id = %s ORDER BY seq",
            (request_id,),
        ).fetchall()


def one(db: str, schema: str, request_id: str) -> dict[str, Any]:
    found = rows(db, schema, request_id)
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(scope="module")
def actions(
    database: str, broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[grpc.Channel]:
    port = free_port()
    env = {
        "CJ_ACTIONS_DATABASE_URL": database,
        "CJ_REDPANDA_BROKERS": broker.bootstrap,
        "CJ_ACTIONS_PORT": str(port),
        "CJ_ACTIONS_TOPICS": unique("t-audit"),
        "CJ_ACTIONS_SECRETS_KEY": base64.b64encode(b"k" * 32).decode(),
        "CJ_ACTIONS_CONSUMER_GROUP": unique("group"),
    }
    logs = tmp_path_factory.mktemp("actions-logs")
    with (
        service_process("actions", env, logs, f"127.0.0.1:{port}"),
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        yield channel


def test_rule_admin_calls_are_recorded_with_who_what_and_outcome(
    actions: grpc.Channel, database: str
) -> None:
    api = actions_pb2_grpc.ActionServiceStub(actions)
    rid = {k: unique(f"req-{k}") for k in ("create", "update", "disable", "enable", "delete")}
    headers = actions_pb2.WebhookTarget(
        url="https://user:hunter2@hooks.example.com/in", secrets=[SECRET]
    )
    headers.headers.update({"Authorization": "Bearer very-secret"})
    rule = api.CreateRule(
        actions_pb2.CreateRuleRequest(name="r1", event_type_pattern="sensor.*", target=headers),
        metadata=meta(rid["create"]),
        timeout=5,
    )
    api.UpdateRule(
        actions_pb2.UpdateRuleRequest(rule_id=rule.rule_id, name="r2"),
        metadata=meta(rid["update"]),
        timeout=5,
    )
    api.DisableRule(
        actions_pb2.DisableRuleRequest(rule_id=rule.rule_id, reason="maintenance"),
        metadata=meta(rid["disable"]),
        timeout=5,
    )
    api.EnableRule(
        actions_pb2.EnableRuleRequest(rule_id=rule.rule_id),
        metadata=meta(rid["enable"]),
        timeout=5,
    )
    api.DeleteRule(
        actions_pb2.DeleteRuleRequest(rule_id=rule.rule_id), metadata=meta(rid["delete"]), timeout=5
    )

    created = one(database, "actions", rid["create"])
    assert (created["subject"], created["action"], created["target"], created["outcome"]) == (
        SUBJECT,
        "/cornjacket.v1.ActionService/CreateRule",
        rule.rule_id,
        "OK",
    )
    after = created["change"]["after"]
    assert after["target"]["headers"] == {"Authorization": "…"}
    assert after["target"]["url"] == "https://…@hooks.example.com/in"
    assert after["target"]["secrets"] == [rule.target.secrets[0]]  # masked like responses
    text = str(rows(database, "actions", rid["create"]))
    assert "very-secret" not in text and "hunter2" not in text and SECRET not in text

    updated = one(database, "actions", rid["update"])["change"]
    assert (updated["before"]["name"], updated["after"]["name"]) == ("r1", "r2")
    disabled = one(database, "actions", rid["disable"])["change"]
    assert (disabled["before"]["enabled"], disabled["after"]["enabled"]) == (True, False)
    assert disabled["after"]["disabled_reason"] == "maintenance"
    enabled = one(database, "actions", rid["enable"])["change"]
    assert (enabled["before"]["enabled"], enabled["after"]["enabled"]) == (False, True)
    deleted = one(database, "actions", rid["delete"])
    assert deleted["outcome"] == "OK" and deleted["change"]["before"]["name"] == "r2"
    assert deleted["ended_at"] >= deleted["at"]


def test_failed_admin_calls_are_recorded_with_their_error_code(
    actions: grpc.Channel, database: str
) -> None:
    api = actions_pb2_grpc.ActionServiceStub(actions)
    missing = str(uuid_utils.uuid7())
    calls: list[tuple[str, Any, Any, str | None]] = [
        (
            "create",
            api.CreateRule,
            actions_pb2.CreateRuleRequest(
                name="bad", event_type_pattern="sensor.*", target={"url": "ftp://x"}
            ),
            "INVALID_ARGUMENT",
        ),
        ("update", api.UpdateRule, actions_pb2.UpdateRuleRequest(rule_id=missing), "NOT_FOUND"),
        ("delete", api.DeleteRule, actions_pb2.DeleteRuleRequest(rule_id=missing), "NOT_FOUND"),
        (
            "disable",
            api.DisableRule,
            actions_pb2.DisableRuleRequest(rule_id=missing),
            "NOT_FOUND",
        ),
        (
            "discard",
            api.DiscardDelivery,
            actions_pb2.DiscardDeliveryRequest(delivery_id=missing),
            "NOT_FOUND",
        ),
        (
            "replay",
            api.ReplayDeliveries,
            actions_pb2.ReplayDeliveriesRequest(delivery_ids=[missing]),
            None,
        ),
    ]
    for name, call, request, code in calls:
        request_id = unique(f"fail-{name}")
        try:
            call(request, metadata=meta(request_id), timeout=5)
            answered = "OK"
        except grpc.RpcError as e:
            answered = e.code().name
        row = one(database, "actions", request_id)
        assert row["outcome"] == answered, (name, row)
        if code is not None:
            assert answered == code and row["error"], (name, row)
    replay = rows(database, "actions", request_id)[0]
    assert replay["change"]["delivery_ids"] == [missing]


def test_owner_lists_its_records_in_time_order_after_a_cursor(
    actions: grpc.Channel, database: str
) -> None:
    api = actions_pb2_grpc.ActionServiceStub(actions)
    audit = audit_pb2_grpc.AuditLogServiceStub(actions)
    start = datetime.now(UTC)
    for i in range(3):
        with pytest.raises(grpc.RpcError):
            api.DeleteRule(
                actions_pb2.DeleteRuleRequest(rule_id=str(uuid_utils.uuid7())),
                metadata=meta(unique(f"list-{i}")),
                timeout=5,
            )
    req = audit_pb2.ListOwnAuditRecordsRequest(limit=2)
    req.since.FromDatetime(start)
    first = audit.ListOwnAuditRecords(req, timeout=5).records
    assert len(first) == 2 and first[0].at.ToDatetime() <= first[1].at.ToDatetime()
    req.after_at.CopyFrom(first[1].at)
    req.after_seq = int(first[1].audit_id.split(":")[1])
    rest = audit.ListOwnAuditRecords(req, timeout=5).records
    assert [r.request_id for r in rest][:1] and rest[0].audit_id not in {r.audit_id for r in first}
    assert all(r.owner == "actions" and r.subject == SUBJECT for r in [*first, *rest])
    with pytest.raises(grpc.RpcError) as bad:
        audit.ListOwnAuditRecords(audit_pb2.ListOwnAuditRecordsRequest(limit=0), timeout=5)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# --- the event handler's DLQ API ----------------------------------------------------------


@pytest.fixture(scope="module")
def handler_db(database: str) -> str:
    migrations.apply(database, "eventhandler")
    return database


def dlq_server(db: str, schema: str) -> tuple[grpc.Server, Any, Any]:
    store = PostgresDeadLetterStore(db)
    store.open()
    audit = SyncAuditLog(db, schema)
    audit.open()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    service = DeadLetterService(store, default_registry(), decode_event, lambda: datetime.now(UTC))
    dlq_pb2_grpc.add_DeadLetterServiceServicer_to_server(DeadLetterServicer(service, audit), server)
    audit_pb2_grpc.add_AuditLogServiceServicer_to_server(
        SyncAuditLogServicer("eventhandler", audit), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, (store, audit), f"127.0.0.1:{port}"


@pytest.fixture
def dlq(handler_db: str) -> Iterator[grpc.Channel]:
    server, (store, audit), address = dlq_server(handler_db, "eventhandler")
    try:
        with grpc.insecure_channel(address) as channel:
            yield channel
    finally:
        server.stop(None)
        store.close()
        audit.close()


def pending_letter(db: str) -> str:
    now = datetime.now(UTC)
    event = Event(
        str(uuid_utils.uuid7()), "sensor.reading", unique("dev"), now, now, {"value": 1.0}
    )
    with psycopg.connect(db, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO eventhandler.dlq (consumer, event_id, event_payload, error_message) "
            "VALUES ('event-handler', %s, %s, 'bug') RETURNING dlq_id::text",
            (event.event_id, encode_event(event)),
        ).fetchone()
    assert row is not None
    return str(row[0])


def test_dead_letter_replay_and_discard_are_recorded_failures_too(
    dlq: grpc.Channel, handler_db: str
) -> None:
    api = dlq_pb2_grpc.DeadLetterServiceStub(dlq)
    replayed, discarded = pending_letter(handler_db), pending_letter(handler_db)
    rid = {k: unique(k) for k in ("replay", "discard", "bad")}
    api.ReplayDeadLetters(
        dlq_pb2.ReplayDeadLettersRequest(dlq_ids=[replayed]), metadata=meta(rid["replay"])
    )
    api.DiscardDeadLetters(
        dlq_pb2.DiscardDeadLettersRequest(dlq_ids=[discarded]), metadata=meta(rid["discard"])
    )
    with pytest.raises(grpc.RpcError) as bad:
        api.DiscardDeadLetters(
            dlq_pb2.DiscardDeadLettersRequest(dlq_ids=["not-a-uuid"]), metadata=meta(rid["bad"])
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    row = one(handler_db, "eventhandler", rid["replay"])
    assert (row["subject"], row["action"], row["outcome"]) == (
        SUBJECT,
        "/cornjacket.v1.DeadLetterService/ReplayDeadLetters",
        "OK",
    )
    assert row["change"]["dlq_ids"] == [replayed]
    assert row["change"]["outcomes"] == [{"dlq_id": replayed, "status": "replayed"}]
    row = one(handler_db, "eventhandler", rid["discard"])
    assert row["change"]["outcomes"] == [{"dlq_id": discarded, "status": "discarded"}]
    row = one(handler_db, "eventhandler", rid["bad"])
    assert row["outcome"] == "INVALID_ARGUMENT" and row["change"]["dlq_ids"] == ["not-a-uuid"]


def test_a_call_that_cannot_be_recorded_changes_nothing(handler_db: str) -> None:
    """Fail closed: no audit record (here: no audit table), no change, and a clear error."""
    letter = pending_letter(handler_db)
    server, (store, audit), address = dlq_server(handler_db, "nosuchschema")
    try:
        with grpc.insecure_channel(address) as channel:
            api = dlq_pb2_grpc.DeadLetterServiceStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                api.DiscardDeadLetters(
                    dlq_pb2.DiscardDeadLettersRequest(dlq_ids=[letter]), timeout=10
                )
    finally:
        server.stop(None)
        store.close()
        audit.close()
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "audit record could not be written" in str(refused.value.details())
    with psycopg.connect(handler_db) as conn:
        status = conn.execute(
            "SELECT status FROM eventhandler.dlq WHERE dlq_id = %s", (letter,)
        ).fetchone()
    assert status == ("pending",)


# --- the operator commands ----------------------------------------------------------------


def cli_rows(db: str, action: str) -> list[dict[str, Any]]:
    with psycopg.connect(db, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT * FROM eventhandler.audit WHERE action = %s ORDER BY seq", (action,)
        ).fetchall()


def test_cli_replay_and_republish_are_recorded_in_the_event_handlers_log(
    handler_db: str, broker: EmbeddedBroker
) -> None:
    events = history(20, aggregates=4, seed=5)
    store_events(handler_db, events)
    env = {
        "CJ_INGESTION_DATABASE_URL": handler_db,
        "CJ_EVENTHANDLER_DATABASE_URL": handler_db,
        "CJ_REDPANDA_BROKERS": broker.bootstrap,
    }
    done = cornjacket("replay", "--check", env=env, timeout=300)
    assert done.returncode in (0, 3), done.stderr
    since = min(e.ingested_at for e in events).isoformat()
    done = cornjacket("republish", "--since", since, env=env, timeout=120)
    assert done.returncode == 0, done.stderr

    (replay,) = cli_rows(handler_db, "cli/replay")
    assert replay["subject"] == f"cli:{getpass.getuser()}" and replay["outcome"] == "OK"
    assert replay["request_id"].startswith("cli-")
    assert replay["change"]["check"] is True and replay["change"]["events"] == len(events)
    (republish,) = cli_rows(handler_db, "cli/republish")
    assert republish["outcome"] == "OK" and republish["change"]["republished"] == len(events)
