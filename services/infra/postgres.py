"""PostgreSQL adapter helpers: pools and driver-error translation."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
import psycopg_pool
from psycopg.rows import DictRow, dict_row

from services.core.errors import InvalidInput, Unavailable

log = logging.getLogger(__name__)

# Pools hand out connections whose rows are dicts keyed by column name.
DictPool = psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[DictRow]]

# Errors that mean "the database cannot be used right now" rather than "your query is wrong".
TRANSIENT = (psycopg.OperationalError, psycopg_pool.PoolTimeout, psycopg.errors.AdminShutdown)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT)


@asynccontextmanager
async def open_pool(
    url: str, *, max_size: int, acquire_timeout: float, name: str
) -> AsyncIterator[DictPool]:
    """An async pool that survives database restarts: broken connections are checked out."""
    pool: DictPool = psycopg_pool.AsyncConnectionPool(
        url,
        connection_class=psycopg.AsyncConnection[DictRow],
        min_size=1,
        max_size=max_size,
        timeout=acquire_timeout,
        name=name,
        open=False,
        # Autocommit: a single statement is its own transaction (one round trip); code that
        # needs more opens conn.transaction() explicitly.
        kwargs={"autocommit": True, "row_factory": dict_row, "connect_timeout": 5},
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
    database cannot hold (a NUL character, say) is the caller's input problem."""
    try:
        yield
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
