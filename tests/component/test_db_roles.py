"""`cornjacket db-roles`: one login role per service against the real PostgreSQL.

Each role owns its own schema and nothing else; the query role only reads
eventhandler.projections. The services then run as real processes with their role's URL
(password from the pgpass file the command writes, as docker-compose.yml does) and do their
work: ingest -> relay -> bus -> projection -> query, and a webhook rule.
"""

from __future__ import annotations

import base64
import stat
from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
from cornjacket.v1 import (
    actions_pb2,
    actions_pb2_grpc,
    ingestion_pb2,
    ingestion_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
)
from psycopg import errors

from services.cli.embedded import EmbeddedBroker
from services.cli.main import main
from services.cli.processes import free_port
from services.infra import migrations
from services.infra.codec import to_value
from tests.support import eventually, fetch_one, service_process, unique

pytestmark = pytest.mark.component

SERVICES = ("ingestion", "eventhandler", "actions", "query")


def role_url(admin_url: str, secrets: Path, prefix: str, service: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    info.pop("password", None)
    info["user"] = f"{prefix}{service}"
    info["passfile"] = str(secrets / service / "pgpass")
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in info.items()})


def as_url(conninfo: str) -> str:
    """The services accept postgresql:// URLs only."""
    d = psycopg.conninfo.conninfo_to_dict(conninfo)
    return (
        f"postgresql://{d['user']}@{d['host']}:{d['port']}/{d['dbname']}?passfile={d['passfile']}"
    )


@pytest.fixture(scope="module")
def roles(
    database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, str], Path]]:
    secrets = tmp_path_factory.mktemp("dbroles")
    prefix = unique("r").replace("-", "_")[:20] + "_"
    mp = pytest.MonkeyPatch()
    mp.setenv("CJ_DB_ADMIN_URL", database)
    argv = ["db-roles", "--secrets-dir", str(secrets), "--role-prefix", prefix]
    assert main(argv) == 0
    first = {s: (secrets / s / "password").read_text() for s in SERVICES}
    assert main(argv) == 0  # re-run safe: same passwords, grants as before
    assert {s: (secrets / s / "password").read_text() for s in SERVICES} == first
    yield {s: as_url(role_url(database, secrets, prefix, s)) for s in SERVICES}, secrets
    mp.undo()


def denied(url: str, sql: str) -> bool:
    with psycopg.connect(url) as conn:
        try:
            conn.execute(sql)
        except errors.InsufficientPrivilege:
            return True
    return False


def test_secret_files_are_private(roles: tuple[dict[str, str], Path]) -> None:
    _, secrets = roles
    for s in SERVICES:
        assert stat.S_IMODE((secrets / s).stat().st_mode) == 0o700
        for name in ("password", "pgpass"):
            assert stat.S_IMODE((secrets / s / name).stat().st_mode) == 0o600


def test_each_role_reaches_its_own_schema_only(roles: tuple[dict[str, str], Path]) -> None:
    urls, _ = roles
    projection = (
        "INSERT INTO eventhandler.projections (projection_type, aggregate_id, state, "
        "last_event_id, last_event_timestamp, updated_at) "
        "VALUES ('x', 'y', '{}', gen_random_uuid(), now(), now())"
    )
    assert denied(urls["query"], projection)
    assert denied(urls["query"], "SELECT 1 FROM ingestion.outbox")
    assert denied(urls["query"], "SELECT 1 FROM eventhandler.dlq")
    assert denied(urls["query"], "SELECT 1 FROM actions.rules")
    assert denied(urls["eventhandler"], "SELECT 1 FROM ingestion.outbox")
    assert denied(urls["eventhandler"], "SELECT 1 FROM actions.rules")
    assert denied(urls["ingestion"], "SELECT 1 FROM actions.rules")
    assert denied(urls["ingestion"], "SELECT 1 FROM eventhandler.projections")
    assert denied(urls["actions"], "SELECT 1 FROM ingestion.event_store")
    for url in urls.values():
        assert denied(url, "CREATE SCHEMA sneaky")
    # The query role reads projections; each owner writes its own tables.
    assert not denied(urls["query"], "SELECT 1 FROM eventhandler.projections")
    assert not denied(urls["eventhandler"], projection)


def test_admin_url_missing_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CJ_DB_ADMIN_URL", raising=False)
    assert main(["db-roles", "--secrets-dir", str(tmp_path)]) == 1
    assert "CJ_DB_ADMIN_URL" in capsys.readouterr().err


def test_no_password_source_is_a_clear_error(
    database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CJ_DB_ADMIN_URL", database)
    assert main(["db-roles", "--role-prefix", "nopw_"]) == 1
    err = capsys.readouterr().err
    assert "CJ_DB_ROLES_INGESTION_PASSWORD" in err and "--secrets-dir" in err


def test_services_do_their_work_under_their_roles(
    roles: tuple[dict[str, str], Path],
    database: str,
    broker: EmbeddedBroker,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    urls, _ = roles
    # Start-up applies the service's own migrations with its own URL: nothing is pending,
    # and the role may look (it owns the schema) without database-level CREATE.
    for service in ("ingestion", "eventhandler", "actions"):
        assert migrations.apply(urls[service], service) == 0
    logs = tmp_path_factory.mktemp("roles-logs")
    ports = {s: free_port() for s in SERVICES}
    common = {"CJ_REDPANDA_BROKERS": broker.bootstrap}
    agg = unique("dev")
    with (
        service_process(
            "ingestion",
            {
                **common,
                "CJ_INGESTION_DATABASE_URL": urls["ingestion"],
                "CJ_INGESTION_PORT": str(ports["ingestion"]),
                "CJ_OUTBOX_POLL_INTERVAL": "1s",
            },
            logs,
            f"127.0.0.1:{ports['ingestion']}",
        ),
        service_process(
            "eventhandler",
            {
                **common,
                "CJ_EVENTHANDLER_DATABASE_URL": urls["eventhandler"],
                "CJ_EVENTHANDLER_PORT": str(ports["eventhandler"]),
                "CJ_EVENTHANDLER_CONSUMER_GROUP": unique("group"),
                "CJ_EVENTHANDLER_POLL_TIMEOUT": "100ms",
            },
            logs,
            f"127.0.0.1:{ports['eventhandler']}",
        ),
        service_process(
            "query",
            {"CJ_QUERY_DATABASE_URL": urls["query"], "CJ_QUERY_PORT": str(ports["query"])},
            logs,
            f"127.0.0.1:{ports['query']}",
        ),
        service_process(
            "actions",
            {
                **common,
                "CJ_ACTIONS_DATABASE_URL": urls["actions"],
                "CJ_ACTIONS_PORT": str(ports["actions"]),
                "CJ_ACTIONS_CONSUMER_GROUP": unique("group"),
                "CJ_ACTIONS_SECRETS_KEY": base64.b64encode(b"k" * 32).decode(),
            },
            logs,
            f"127.0.0.1:{ports['actions']}",
        ),
    ):
        with grpc.insecure_channel(f"127.0.0.1:{ports['ingestion']}") as ch:
            ingestion_pb2_grpc.IngestionServiceStub(ch).IngestEvent(
                ingestion_pb2.IngestEventRequest(
                    event_type="sensor.reading",
                    aggregate_id=agg,
                    payload=to_value({"value": 7, "unit": "C"}),
                ),
                timeout=10,
            )
        # The relay (ingestion's role) moved it to the event store and onto the bus.
        eventually(
            lambda: (
                (
                    fetch_one(
                        database,
                        "SELECT count(*) FROM ingestion.event_store WHERE aggregate_id = %s",
                        (agg,),
                    )
                    or (0,)
                )[0]
                == 1
            ),
            timeout=30,
        )
        with grpc.insecure_channel(f"127.0.0.1:{ports['query']}") as ch:
            query = query_pb2_grpc.QueryServiceStub(ch)

            def projected() -> bool:
                try:
                    p = query.GetProjection(
                        query_pb2.GetProjectionRequest(
                            projection_type="sensor_state", aggregate_id=agg
                        ),
                        timeout=5,
                    )
                except grpc.RpcError as e:
                    assert e.code() == grpc.StatusCode.NOT_FOUND, e
                    return False
                return dict(p.state).get("value") == 7.0

            eventually(projected, timeout=30)
        with grpc.insecure_channel(f"127.0.0.1:{ports['actions']}") as ch:
            api = actions_pb2_grpc.ActionServiceStub(ch)
            rule = api.CreateRule(
                actions_pb2.CreateRuleRequest(
                    name="roles",
                    event_type_pattern="sensor.*",
                    target=actions_pb2.WebhookTarget(url="https://example.com/hook"),
                ),
                timeout=5,
            )
            got = api.GetRule(actions_pb2.GetRuleRequest(rule_id=rule.rule_id), timeout=5)
            assert got.name == "roles"


def test_secrets_key_init_makes_a_private_key_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docker-compose.yml's actions-key job: the orchestrator refuses to start without it."""
    from services.actions import secretbox

    key = tmp_path / "k" / "secrets.key"
    monkeypatch.setenv("CJ_ACTIONS_SECRETS_KEY_FILE", str(key))
    assert main(["rotate-secrets-key", "--init"]) == 0
    first = key.read_text()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(secretbox.parse_keys(first, str(key))) == 1
    assert main(["rotate-secrets-key", "--init"]) == 0
    assert key.read_text() == first
