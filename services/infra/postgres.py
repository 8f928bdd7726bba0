"""PostgreSQL adapter helpers: pools and driver-error translation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

import psycopg
import psycopg_pool
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import set_json_loads

from services.core import json_text
from services.core.aio import wait_event
from services.core.errors import InvalidInput, Unavailable

log = logging.getLogger(__name__)

# json/jsonb columns are parsed with orjson (the relay reads every outbox row's JSON).
set_json_loads(json_text.loads)

# Pools hand out connections whose rows are dicts keyed by column name.
DictPool = psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[DictRow]]

# Errors that mean "the database cannot be used right now" rather than "your query is wrong".
TRANSIENT = (psycopg.OperationalError, psycopg_pool.PoolTimeout, psycopg.errors.AdminShutdown)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT)


def utc_options(url: str) -> str:
    """The ``options`` startup parameter for a session in UTC, keeping any options the
    configured URL already carries (a keyword argument would replace them)."""
    given = psycopg.conninfo.conninfo_to_dict(url).get("options") or ""
    return f"{given} -c TimeZone=UTC".strip()


# TCP keepalives for blocking sessions that hold locks or wait on a server: a half-open
# peer is noticed in about a minute instead of the kernel's two hours.
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


def connect_bounded(
    url: str, *, lock_timeout: float, statement_timeout: float
) -> psycopg.Connection[tuple[object, ...]]:
    """A blocking autocommit session in UTC whose lock waits and statements are bounded
    (LockNotAvailable / QueryCanceled, both TRANSIENT) and whose dead peer is noticed
    (keepalives): for writers that must never wait forever behind another session."""
    # The server probes this session too (a half-open client holding locks is noticed and
    # its transaction ended), and never keeps an idle transaction open past the statement
    # bound.
    options = (
        f"{utc_options(url)} -c lock_timeout={int(lock_timeout * 1000)}"
        f" -c statement_timeout={int(statement_timeout * 1000)}"
        f" -c idle_in_transaction_session_timeout={int(statement_timeout * 1000)}"
        " -c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3"
    )
    conninfo = psycopg.conninfo.make_conninfo(url, connect_timeout=5, options=options, **KEEPALIVES)
    return psycopg.connect(conninfo, autocommit=True)


# Program limits (SQLSTATE 54xxx) that concern the size of this statement's data: the same
# statement fails again, the database is fine. Others of the class are not the caller's
# fault: "database is not accepting commands ... to avoid wraparound data loss" is an
# outage that clears after a VACUUM, so it stays Unavailable.
_DATA_SIZE_LIMIT = ("exceeds", "too long", "too large", "too big", "too many elements")


def _is_data_size_limit(e: psycopg.errors.ProgramLimitExceeded) -> bool:
    text = (e.diag.message_primary or str(e)).lower()
    return any(marker in text for marker in _DATA_SIZE_LIMIT)


@asynccontextmanager
async def open_pool(
    url: str,
    *,
    max_size: int,
    acquire_timeout: float,
    name: str,
    session: Mapping[str, str] | None = None,
) -> AsyncIterator[DictPool]:
    """An async pool that survives database restarts: broken connections are checked out.
    ``session``: server settings of every connection (``-c name=value`` at start-up)."""
    options = utc_options(url) + "".join(f" -c {k}={v}" for k, v in (session or {}).items())
    pool: DictPool = psycopg_pool.AsyncConnectionPool(
        url,
        connection_class=psycopg.AsyncConnection[DictRow],
        min_size=1,
        max_size=max_size,
        timeout=acquire_timeout,
        name=name,
        open=False,
        # Autocommit: a single statement is its own transaction (one round trip); code that
        # needs more opens conn.transaction() explicitly. Sessions in UTC: timestamptz reads
        # carry +00:00 whatever the server's or database's time zone.
        kwargs={
            "autocommit": True,
            "row_factory": dict_row,
            "connect_timeout": 5,
            "options": options,
        },
        reconnect_timeout=0,  # keep trying forever; the service reports unhealthy meanwhile
    )
    await pool.open(wait=False)
    try:
        yield pool
    finally:
        await pool.close()


class Availability:
    """Last known reachability of the database, kept current by the health monitor.

    Adapters consult it to fail fast with Unavailable during an outage instead of making
    every caller wait for the pool's acquire timeout.
    """

    def __init__(self) -> None:
        self.up = True

    async def observe(self, pool: DictPool, up: bool) -> None:
        """Record a health check; when the database comes back, drop pooled connections
        that broke meanwhile (we do not pay a check round trip on every checkout)."""
        if up and not self.up:
            await pool.check()
        self.up = up

    def check(self, what: str) -> None:
        if not self.up:
            raise Unavailable(
                f"database unavailable while {what}: it did not answer the last health check"
            )


@asynccontextmanager
async def translate_errors(what: str) -> AsyncIterator[None]:
    """Turn transient driver errors into Unavailable, naming what we were doing; a value the
    database cannot hold (a NUL character, say) is the caller's input problem. So is a
    program limit (an OperationalError subclass, e.g. a jsonb value past 256 MiB): the data
    of this statement is too big, the database is fine and the same statement fails again
    (only size limits: other program limits, such as refusing writes near transaction-id
    wraparound, are an outage)."""
    try:
        yield
    except psycopg.errors.ProgramLimitExceeded as e:
        if not _is_data_size_limit(e):
            raise Unavailable(f"database unavailable while {what}: {e}".strip()) from e
        reason = e.diag.message_primary or str(e)  # not the CONTEXT line: it quotes the data
        raise InvalidInput(f"{what}: a database limit was exceeded: {reason}") from e
    except TRANSIENT as e:
        raise Unavailable(f"database unavailable while {what}: {e}".strip()) from e
    except psycopg.DataError as e:
        raise InvalidInput(f"{what}: a value cannot be used: {e}".strip()) from e


@asynccontextmanager
async def translate_missing_table(what: str) -> AsyncIterator[None]:
    """A table another service owns may not exist yet (it has not migrated): transient."""
    try:
        yield
    except psycopg.errors.UndefinedTable as e:
        raise Unavailable(f"{what}: the table does not exist yet ({e})") from e


async def ping(pool: DictPool, wait: float = 2.0, probe: str = "SELECT 1") -> bool:
    try:
        async with pool.connection(timeout=wait) as conn:
            await conn.execute(probe)
        return True
    except Exception:
        return False


async def listen(
    url: str, channel: str, on_notify: Callable[[], None], stop: asyncio.Event
) -> None:
    """Call ``on_notify`` on every NOTIFY on ``channel`` until ``stop``; reconnect after
    failures with backoff. It also calls it once per (re)connection, to catch up on what
    arrived while nobody listened; callers keep a watchdog poll for anything else."""
    backoff = 0.5
    while not stop.is_set():
        try:
            async with await psycopg.AsyncConnection.connect(
                url, autocommit=True, connect_timeout=5, options=utc_options(url)
            ) as conn:
                await conn.execute(f"LISTEN {channel}")
                backoff = 0.5
                on_notify()
                while not stop.is_set():
                    # The timeout lets us notice stop() without a notification arriving.
                    async for _ in conn.notifies(timeout=1.0):
                        on_notify()
        except TRANSIENT as e:
            log.debug("listener reconnecting", extra={"channel": channel, "error": str(e)})
        if not stop.is_set():
            await wait_event(stop, backoff)
            backoff = min(backoff * 2, 5.0)
