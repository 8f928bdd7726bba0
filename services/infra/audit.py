"""The audit log of admin calls, written by each owner into its own schema (ADR 16).

A record is begun before the change (outcome UNKNOWN) and completed after it with the
outcome ("OK" or the gRPC code name) and what changed. Failing to begin refuses the call
(UNAVAILABLE, nothing changed): no admin change goes unrecorded. Failing to complete is
logged and counted, never turned into a failed call (the change is done; the record keeps
saying UNKNOWN). Every write is bounded by the pool's acquire timeout and STATEMENT_TIMEOUT,
so recording cannot hang a call.

Who: the ``x-cj-subject`` header Envoy sets from the verified token (it strips a client's
own); which request: ``x-request-id``. The servicers for the owners' side of
``AuditLogService`` live here too, one async (action orchestrator), one sync (event handler).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
import psycopg
from cornjacket.v1 import audit_pb2, audit_pb2_grpc
from psycopg import sql
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from services.core.errors import InvalidInput, NotFound, Unavailable
from services.infra import metrics
from services.infra.codec import to_struct
from services.infra.grpc_errors import grpc_errors, grpc_errors_sync
from services.infra.postgres import DictPool

log = logging.getLogger(__name__)

SUBJECT_HEADER = "x-cj-subject"
REQUEST_ID_HEADER = "x-request-id"
STATEMENT_TIMEOUT = "5s"
MAX_LIST = 1000


@dataclass(frozen=True, slots=True)
class Caller:
    subject: str
    request_id: str


def caller_of(metadata: Sequence[tuple[str, str | bytes]] | None) -> Caller:
    """Subject and request id from a call's metadata (a request id is made up when the call
    did not come through the edge)."""
    found: dict[str, str] = {}
    for k, v in metadata or ():
        if k in (SUBJECT_HEADER, REQUEST_ID_HEADER) and k not in found:
            found[k] = v if isinstance(v, str) else v.decode(errors="replace")
    return Caller(
        subject=found.get(SUBJECT_HEADER, "")[:200],
        request_id=found.get(REQUEST_ID_HEADER, "")[:200] or f"local-{uuid.uuid4()}",
    )


def cli_caller() -> Caller:
    """The operator commands run on the host: the OS user is who."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Caller(subject=f"cli:{user}", request_id=f"cli-{uuid.uuid4()}")


def outcome_of(exc: BaseException) -> str:
    """The gRPC code name a failed call answers with (grpc_errors' mapping)."""
    if isinstance(exc, InvalidInput):
        return "INVALID_ARGUMENT"
    if isinstance(exc, NotFound):
        return "NOT_FOUND"
    if isinstance(exc, Unavailable):
        return "UNAVAILABLE"
    if isinstance(exc, asyncio.CancelledError):
        return "CANCELLED"
    return "INTERNAL"


def error_of(exc: BaseException) -> str:
    """The ``error`` a failed call's record keeps: the platform's own words for refused
    input (InvalidInput, NotFound: written to be shown to the caller, URLs in them masked);
    a generic text for anything else, whose message may be a driver's or library's and name
    hosts, addresses or credentials (that detail is in the service's log)."""
    if isinstance(exc, InvalidInput | NotFound):
        return str(exc)[:1000]
    return f"{outcome_of(exc).lower()} error (details in the service log)"


@dataclass(slots=True)
class Entry:
    """What the audited call fills in while it runs."""

    target: str = ""
    change: dict[str, Any] = field(default_factory=dict)


_BEGIN = (
    "INSERT INTO {} (at, subject, request_id, action, target) "
    "VALUES (clock_timestamp(), %s, %s, %s, %s) RETURNING seq"
)
_END = (
    "UPDATE {} SET outcome = %s, error = %s, target = %s, change = %s, "
    "ended_at = clock_timestamp() WHERE seq = %s"
)
_TIMEOUT = f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'"


def _table(schema: str) -> sql.Composable:
    return sql.Identifier(schema, "audit")


@dataclass(frozen=True, slots=True)
class _Statements:
    """The statements and their arguments, one place for the async and the sync log (they
    differ only in how they run them)."""

    table: sql.Composable

    def begin(self, who: Caller, action: str, target: str) -> tuple[sql.Composed, tuple[Any, ...]]:
        return sql.SQL(_BEGIN).format(self.table), (who.subject, who.request_id, action, target)

    def end(
        self, seq: int, entry: Entry, outcome: str, error: str
    ) -> tuple[sql.Composed, tuple[Any, ...]]:
        return sql.SQL(_END).format(self.table), (
            outcome,
            error,
            entry.target,
            Jsonb(entry.change),
            seq,
        )

    def page(
        self,
        since: datetime | None,
        until: datetime | None,
        after: tuple[datetime, int] | None,
        limit: int,
    ) -> tuple[sql.Composed, list[Any]]:
        where, params = _where(since, until, after)
        query = sql.SQL("SELECT * FROM {} WHERE {} ORDER BY at, seq LIMIT %s").format(
            self.table, where
        )
        return query, [*params, limit]


def _seq_of(row: DictRow | None) -> int:
    if row is None:  # RETURNING always answers a row
        raise _unavailable(RuntimeError("the insert returned no row"))
    return int(row["seq"])


def _unavailable(e: Exception) -> Unavailable:
    """What the caller is told: the platform's own words (raised ``from None``, so the edge's
    error mapping passes them on); the driver's text, which may name hosts, is logged."""
    log.error("audit record could not be written", extra={"error": str(e)})
    return Unavailable("the audit record could not be written, nothing was changed")


def _ended(owner: str, action: str, seq: int, e: BaseException) -> None:
    metrics.AUDIT_UNFINISHED.labels(owner).inc()
    log.error(
        "audit record left UNKNOWN: the call's outcome could not be recorded",
        extra={"owner": owner, "action": action, "seq": seq, "error": str(e)},
    )


class AsyncAuditLog:
    """Records of one owner (schema) over its async pool. Safe for concurrent use."""

    def __init__(self, pool: DictPool, schema: str) -> None:
        self._pool = pool
        self._schema = schema
        self._sql = _Statements(_table(schema))

    @contextlib.asynccontextmanager
    async def record(
        self, context: grpc.aio.ServicerContext, action: str, target: str = ""
    ) -> AsyncIterator[Entry]:
        who = caller_of(context.invocation_metadata())
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute(_TIMEOUT)
                cur = await conn.execute(*self._sql.begin(who, action, target))
                row = await cur.fetchone()
        except (psycopg.Error, PoolTimeout) as e:
            raise _unavailable(e) from None
        seq = _seq_of(row)
        entry = Entry(target=target)
        try:
            yield entry
        except BaseException as e:
            await self._end(seq, action, entry, outcome_of(e), error_of(e))
            raise
        await self._end(seq, action, entry, "OK", "")

    async def _end(self, seq: int, action: str, entry: Entry, outcome: str, error: str) -> None:
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute(_TIMEOUT)
                await conn.execute(*self._sql.end(seq, entry, outcome, error))
        except (psycopg.Error, PoolTimeout, asyncio.CancelledError) as e:
            _ended(self._schema, action, seq, e)

    async def page(
        self,
        since: datetime | None,
        until: datetime | None,
        after: tuple[datetime, int] | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(*self._sql.page(since, until, after, limit))
                return list(await cur.fetchall())
        except (psycopg.OperationalError, PoolTimeout) as e:
            raise Unavailable(f"database unavailable while listing audit records: {e}") from e


class SyncAuditLog:
    """The same for synchronous servers (the event handler's) and the operator commands;
    owns a small pool of its own."""

    def __init__(self, url: str, schema: str, *, max_size: int = 2) -> None:
        self._schema = schema
        self._sql = _Statements(_table(schema))
        self._pool: ConnectionPool[psycopg.Connection[DictRow]] = ConnectionPool(
            url,
            connection_class=psycopg.Connection[DictRow],
            min_size=1,
            max_size=max_size,
            kwargs={
                "row_factory": dict_row,
                "autocommit": True,
                "connect_timeout": 5,
                "options": "-c TimeZone=UTC",
            },
            name=f"audit-{schema}",
            open=False,
            timeout=5,
        )

    def open(self) -> None:
        self._pool.open(wait=False)

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> SyncAuditLog:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def record(self, who: Caller, action: str, target: str = "") -> Iterator[Entry]:
        try:
            with self._pool.connection() as conn, conn.transaction():
                conn.execute(_TIMEOUT)
                row = conn.execute(*self._sql.begin(who, action, target)).fetchone()
        except (psycopg.Error, PoolTimeout) as e:
            raise _unavailable(e) from None
        seq = _seq_of(row)
        entry = Entry(target=target)
        try:
            yield entry
        except BaseException as e:
            self._end(seq, action, entry, outcome_of(e), error_of(e))
            raise
        self._end(seq, action, entry, "OK", "")

    def _end(self, seq: int, action: str, entry: Entry, outcome: str, error: str) -> None:
        try:
            with self._pool.connection() as conn, conn.transaction():
                conn.execute(_TIMEOUT)
                conn.execute(*self._sql.end(seq, entry, outcome, error))
        except (psycopg.Error, PoolTimeout) as e:
            _ended(self._schema, action, seq, e)

    def page(
        self,
        since: datetime | None,
        until: datetime | None,
        after: tuple[datetime, int] | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        try:
            with self._pool.connection() as conn:
                return list(conn.execute(*self._sql.page(since, until, after, limit)).fetchall())
        except (psycopg.OperationalError, PoolTimeout) as e:
            raise Unavailable(f"database unavailable while listing audit records: {e}") from e


def _where(
    since: datetime | None, until: datetime | None, after: tuple[datetime, int] | None
) -> tuple[sql.Composable, list[Any]]:
    parts: list[sql.Composable] = [sql.SQL("TRUE")]
    params: list[Any] = []
    if since is not None:
        parts.append(sql.SQL("at >= %s"))
        params.append(since)
    if until is not None:
        parts.append(sql.SQL("at < %s"))
        params.append(until)
    if after is not None:
        parts.append(sql.SQL("(at, seq) > (%s, %s)"))
        params.extend(after)
    return sql.SQL(" AND ").join(parts), params


# --- the owners' side of AuditLogService --------------------------------------------------


def _when(ts: Any) -> datetime:
    dt: datetime = ts.ToDatetime(tzinfo=UTC)
    return dt


def _query(
    request: audit_pb2.ListOwnAuditRecordsRequest,
) -> tuple[datetime | None, datetime | None, tuple[datetime, int] | None, int]:
    if not 1 <= request.limit <= MAX_LIST:
        raise InvalidInput(f"limit {request.limit} is not in 1..{MAX_LIST}")
    return (
        _when(request.since) if request.HasField("since") else None,
        _when(request.until) if request.HasField("until") else None,
        (_when(request.after_at), request.after_seq) if request.HasField("after_at") else None,
        request.limit,
    )


def record_to_proto(owner: str, row: dict[str, Any]) -> audit_pb2.AuditRecord:
    msg = audit_pb2.AuditRecord(
        audit_id=f"{owner}:{row['seq']}",
        owner=owner,
        subject=row["subject"],
        request_id=row["request_id"],
        action=row["action"],
        target=row["target"],
        change=to_struct(row["change"]),
        outcome=row["outcome"],
        error=row["error"],
    )
    msg.at.FromDatetime(row["at"])
    return msg


class AuditLogServicer(audit_pb2_grpc.AuditLogServiceServicer):
    def __init__(self, owner: str, log_: AsyncAuditLog) -> None:
        self._owner = owner
        self._log = log_

    @grpc_errors
    async def ListOwnAuditRecords(
        self, request: audit_pb2.ListOwnAuditRecordsRequest, context: grpc.aio.ServicerContext
    ) -> audit_pb2.ListOwnAuditRecordsResponse:
        rows = await self._log.page(*_query(request))
        return audit_pb2.ListOwnAuditRecordsResponse(
            records=[record_to_proto(self._owner, r) for r in rows]
        )


class SyncAuditLogServicer(audit_pb2_grpc.AuditLogServiceServicer):
    def __init__(self, owner: str, log_: SyncAuditLog) -> None:
        self._owner = owner
        self._log = log_

    @grpc_errors_sync
    def ListOwnAuditRecords(
        self, request: audit_pb2.ListOwnAuditRecordsRequest, context: grpc.ServicerContext
    ) -> audit_pb2.ListOwnAuditRecordsResponse:
        rows = self._log.page(*_query(request))
        return audit_pb2.ListOwnAuditRecordsResponse(
            records=[record_to_proto(self._owner, r) for r in rows]
        )
