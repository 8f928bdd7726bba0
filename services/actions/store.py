"""PostgreSQL adapters of the action orchestrator (schema ``actions``).

``PostgresActionStore`` (async, pooled) serves the API and the delivery workers;
``PostgresJobSink`` (blocking, one connection) serves the consumer thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb

from services.actions import policy as pol
from services.actions.ports import (
    DISCARDED,
    PENDING,
    Attempt,
    BreakerView,
    Delivery,
    DeliveryFilter,
    Job,
    NewJob,
    Outcome,
    RuleChanges,
)
from services.actions.rules import CompiledRule, Rule, RuleDraft, Target, compile_rule, endpoint_of
from services.actions.secretbox import SecretBox
from services.core.errors import InvalidInput, Unavailable
from services.infra.postgres import TRANSIENT, DictPool, translate_errors

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "actions_jobs"

_RULE_COLS = (
    "rule_id, name, event_type_pattern, condition, target_url, target_headers, secrets, "
    "enabled, disabled_reason, created_at, updated_at"
)
_DELIVERY_COLS = (
    "delivery_id, rule_id, event_id, event_type, target_url, status, attempt_count, "
    "next_attempt_at, last_error, created_at, updated_at, delivered_at, replay_count"
)


def _rule(row: dict[str, Any], box: SecretBox) -> Rule:
    return Rule(
        rule_id=str(row["rule_id"]),
        name=row["name"],
        event_type_pattern=row["event_type_pattern"],
        condition=row["condition"],
        target=Target(
            row["target_url"],
            dict(row["target_headers"]),
            tuple(box.open(x) for x in row["secrets"]),
        ),
        enabled=row["enabled"],
        disabled_reason=row["disabled_reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _delivery(row: dict[str, Any], attempts: list[Attempt]) -> Delivery:
    return Delivery(
        delivery_id=str(row["delivery_id"]),
        rule_id=str(row["rule_id"]),
        event_id=str(row["event_id"]),
        event_type=row["event_type"],
        target_url=row["target_url"],
        status=row["status"],
        attempt_count=row["attempt_count"],
        next_attempt_at=row["next_attempt_at"] if row["status"] == PENDING else None,
        last_error=row["last_error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        delivered_at=row["delivered_at"],
        replay_count=row["replay_count"],
        attempts=attempts,
    )


def _attempt(row: dict[str, Any]) -> Attempt:
    return Attempt(
        attempt=row["attempt"],
        started_at=row["started_at"],
        duration_ms=row["duration_ms"],
        outcome=row["outcome"],
        status_code=row["status_code"],
        error=row["error"],
        url=row["url"],
    )


def _breaker(row: dict[str, Any]) -> pol.Breaker:
    return pol.Breaker(
        row["state"], row["consecutive_failures"], row["open_until"], row["trial_until"]
    )


_CLAIM = """
WITH next AS (
    SELECT delivery_id FROM actions.deliveries
    WHERE status = 'pending' AND next_attempt_at <= %(now)s AND endpoint <> ALL(%(busy)s)
    ORDER BY next_attempt_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE actions.deliveries d
SET next_attempt_at = %(lease)s, locked_until = %(lease)s, locked_by = %(token)s
FROM next, actions.rules r
WHERE d.delivery_id = next.delivery_id AND r.rule_id = d.rule_id
RETURNING d.delivery_id, d.rule_id, d.event_type, d.event, d.attempt_count, d.budget_base,
    d.created_at, r.enabled, r.target_url, r.target_headers, r.secrets
"""

_RESERVE = """
UPDATE actions.rate_limit r
SET next_slot = greatest(old.next_slot, %(now)s) + make_interval(secs => %(interval)s)
FROM (SELECT next_slot FROM actions.rate_limit WHERE id = 1 FOR UPDATE) AS old
WHERE r.id = 1
RETURNING greatest(old.next_slot, %(now)s) AS slot
"""

_FINISH = """
UPDATE actions.deliveries
SET status = %(status)s,
    attempt_count = attempt_count + %(inc)s,
    next_attempt_at = %(next)s,
    locked_until = NULL,
    locked_by = NULL,
    last_error = %(error)s,
    updated_at = %(now)s,
    delivered_at = CASE WHEN %(status)s = 'delivered' THEN %(now)s ELSE delivered_at END,
    failed_at = CASE WHEN %(status)s = 'failed' THEN %(now)s ELSE failed_at END
WHERE delivery_id = %(id)s AND status = 'pending' AND locked_by = %(token)s
"""

_INSERT_ATTEMPT = """
INSERT INTO actions.attempts
    (delivery_id, attempt, started_at, duration_ms, outcome, status_code, error, url)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
"""


def _text(value: str, limit: int = 2000) -> str:
    """A text column's value: PostgreSQL refuses NUL characters (the whole transaction would
    fail, and the job would come back after every lease)."""
    return value.replace("\x00", "\ufffd")[:limit]


_ENQUEUE = """
INSERT INTO actions.deliveries (delivery_id, rule_id, event_id, event_type, target_url, endpoint,
    event, status, next_attempt_at, created_at, updated_at)
SELECT j.delivery_id, j.rule_id, j.event_id, j.event_type, j.target_url, j.endpoint, j.event,
    'pending', %(now)s, %(now)s, %(now)s
FROM jsonb_to_recordset(%(jobs)s::jsonb) AS j(delivery_id uuid, rule_id uuid, event_id uuid,
    event_type text, target_url text, endpoint text, event jsonb)
-- the rule may have been deleted since we read it
WHERE EXISTS (SELECT 1 FROM actions.rules r WHERE r.rule_id = j.rule_id)
ON CONFLICT (rule_id, event_id) DO NOTHING
RETURNING delivery_id, event_type, target_url
"""

_DEDUPE = """
INSERT INTO actions.dedupe AS d (event_type, target_url, window_until, delivery_id)
VALUES (%(type)s, %(url)s, %(until)s, %(id)s)
ON CONFLICT (event_type, target_url) DO UPDATE
SET window_until = EXCLUDED.window_until, delivery_id = EXCLUDED.delivery_id
WHERE d.window_until <= %(now)s
RETURNING delivery_id
"""


class PostgresActionStore:
    """Rules, deliveries, the job queue and breakers over an async pool. Concurrency-safe."""

    def __init__(self, pool: DictPool, box: SecretBox) -> None:
        self._pool = pool
        # Signing secrets are sealed (AES-GCM) in the secrets column, opened when read.
        self._box = box

    async def seal_plaintext_secrets(self) -> int:
        """Seal the secrets of rules stored before sealing (migration 003): run at start,
        idempotent, one transaction. How many rules it sealed."""
        async with (
            translate_errors("sealing stored secrets"),
            self._pool.connection() as conn,
            conn.transaction(),
        ):
            cur = await conn.execute(
                "SELECT rule_id, secrets FROM actions.rules "
                "WHERE NOT actions.all_sealed(secrets) FOR UPDATE"
            )
            rows = await cur.fetchall()
            for row in rows:
                await conn.execute(
                    "UPDATE actions.rules SET secrets = %s WHERE rule_id = %s",
                    ([self._box.reseal(x) for x in row["secrets"]], row["rule_id"]),
                )
        return len(rows)

    # --- rules ---------------------------------------------------------------------------

    async def create(self, rule_id: str, draft: RuleDraft, now: datetime) -> Rule:
        async with translate_errors("creating a rule"), self._pool.connection() as conn:
            cur = await conn.execute(
                f"INSERT INTO actions.rules ({_RULE_COLS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                f"RETURNING {_RULE_COLS}",
                (
                    rule_id,
                    draft.name,
                    draft.event_type_pattern,
                    draft.condition,
                    draft.target.url,
                    Jsonb(draft.target.headers),
                    [self._box.seal(x) for x in draft.target.secrets],
                    draft.enabled,
                    "" if draft.enabled else "created disabled",
                    now,
                    now,
                ),
            )
            row = await cur.fetchone()
            assert row is not None
            return _rule(row, self._box)

    async def get(self, rule_id: str) -> Rule | None:
        async with translate_errors("reading a rule"), self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_RULE_COLS} FROM actions.rules WHERE rule_id = %s", (rule_id,)
            )
            row = await cur.fetchone()
            return _rule(row, self._box) if row else None

    async def list_rules(self, limit: int, offset: int) -> tuple[list[Rule], int]:
        async with translate_errors("listing rules"), self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_RULE_COLS}, count(*) OVER () AS total FROM actions.rules "
                "ORDER BY created_at, rule_id LIMIT %s OFFSET %s",
                (limit, offset),
            )
            rows = await cur.fetchall()
            if rows:
                return [_rule(r, self._box) for r in rows], int(rows[0]["total"])
            cur = await conn.execute("SELECT count(*) AS n FROM actions.rules")
            total = await cur.fetchone()
            return [], int(total["n"]) if total else 0

    async def update(self, rule_id: str, changes: RuleChanges, now: datetime) -> Rule | None:
        sets: list[str] = ["updated_at = %(now)s"]
        params: dict[str, Any] = {"id": rule_id, "now": now}
        if changes.name is not None:
            sets.append("name = %(name)s")
            params["name"] = changes.name
        if changes.event_type_pattern is not None:
            sets.append("event_type_pattern = %(pattern)s")
            params["pattern"] = changes.event_type_pattern
        if changes.condition is not None:
            sets.append("condition = %(condition)s")
            params["condition"] = changes.condition
        if changes.target is not None:
            sets += ["target_url = %(url)s", "target_headers = %(headers)s"]
            params["url"] = changes.target.url
            params["headers"] = Jsonb(changes.target.headers)
            if changes.target.secrets:
                sets.append("secrets = %(secrets)s")
                params["secrets"] = [self._box.seal(x) for x in changes.target.secrets]
        async with (
            translate_errors("updating a rule"),
            self._pool.connection() as conn,
            conn.transaction(),
        ):
            cur = await conn.execute(
                f"UPDATE actions.rules SET {', '.join(sets)} WHERE rule_id = %(id)s "
                f"RETURNING {_RULE_COLS}",
                params,
            )
            row = await cur.fetchone()
            if row and changes.target is not None:
                # Pending jobs go to the new target (and count against its breaker).
                await conn.execute(
                    "UPDATE actions.deliveries SET target_url = %s, endpoint = %s "
                    "WHERE rule_id = %s AND status = 'pending'",
                    (changes.target.url, endpoint_of(changes.target.url), rule_id),
                )
            return _rule(row, self._box) if row else None

    async def set_enabled(
        self, rule_id: str, enabled: bool, reason: str, now: datetime
    ) -> Rule | None:
        async with (
            translate_errors("enabling or disabling a rule"),
            self._pool.connection() as conn,
        ):
            cur = await conn.execute(
                "UPDATE actions.rules SET enabled = %s, disabled_reason = %s, updated_at = %s "
                f"WHERE rule_id = %s RETURNING {_RULE_COLS}",
                (enabled, "" if enabled else reason, now, rule_id),
            )
            row = await cur.fetchone()
            return _rule(row, self._box) if row else None

    async def delete(self, rule_id: str) -> bool:
        async with translate_errors("deleting a rule"), self._pool.connection() as conn:
            cur = await conn.execute("DELETE FROM actions.rules WHERE rule_id = %s", (rule_id,))
            return cur.rowcount > 0

    # --- deliveries (API) ----------------------------------------------------------------

    async def _attempts(
        self, conn: psycopg.AsyncConnection[DictRow], ids: list[Any]
    ) -> dict[str, list[Attempt]]:
        out: dict[str, list[Attempt]] = {str(i): [] for i in ids}
        if not ids:
            return out
        cur = await conn.execute(
            "SELECT delivery_id, attempt, started_at, duration_ms, outcome, status_code, error, "
            "url FROM actions.attempts WHERE delivery_id = ANY(%s) ORDER BY attempt_id",
            (ids,),
        )
        for row in await cur.fetchall():
            out[str(row["delivery_id"])].append(_attempt(row))
        return out

    async def list_deliveries(
        self, flt: DeliveryFilter, limit: int, offset: int
    ) -> tuple[list[Delivery], int]:
        where: list[str] = []
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if flt.rule_id:
            where.append("rule_id = %(rule)s")
            params["rule"] = flt.rule_id
        if flt.status:
            where.append("status = %(status)s")
            params["status"] = flt.status
        if flt.event_id:
            where.append("event_id = %(event)s")
            params["event"] = flt.event_id
        if flt.since is not None:
            where.append("created_at >= %(since)s")
            params["since"] = flt.since
        if flt.until is not None:
            where.append("created_at < %(until)s")
            params["until"] = flt.until
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        async with (
            translate_errors("listing deliveries"),
            self._pool.connection() as conn,
            conn.transaction(),
        ):
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            cur = await conn.execute(
                f"SELECT count(*) AS n FROM actions.deliveries {clause}", params
            )
            total_row = await cur.fetchone()
            cur = await conn.execute(
                f"SELECT {_DELIVERY_COLS} FROM actions.deliveries {clause} "
                "ORDER BY created_at DESC, delivery_id DESC LIMIT %(limit)s OFFSET %(offset)s",
                params,
            )
            rows = await cur.fetchall()
            attempts = await self._attempts(conn, [r["delivery_id"] for r in rows])
        items = [_delivery(r, attempts[str(r["delivery_id"])]) for r in rows]
        return items, int(total_row["n"]) if total_row else 0

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        async with translate_errors("reading a delivery"), self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_DELIVERY_COLS} FROM actions.deliveries WHERE delivery_id = %s",
                (delivery_id,),
            )
            row = await cur.fetchone()
            if row is None:
                return None
            attempts = await self._attempts(conn, [row["delivery_id"]])
            return _delivery(row, attempts[str(row["delivery_id"])])

    async def breakers(self) -> list[BreakerView]:
        async with translate_errors("listing breakers"), self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT endpoint, state, consecutive_failures, open_until, trial_until, "
                "updated_at FROM actions.breakers ORDER BY endpoint"
            )
            rows = await cur.fetchall()
        return [
            BreakerView(
                r["endpoint"],
                r["state"],
                r["consecutive_failures"],
                _breaker(r).retry_at(),
                r["updated_at"],
            )
            for r in rows
        ]

    async def replay(
        self, delivery_ids: Sequence[str], all_failed: bool, rule_id: str, now: datetime
    ) -> list[str]:
        where = ["status IN ('failed', 'discarded')"]
        params: dict[str, Any] = {"now": now}
        if all_failed:
            where = ["status = 'failed'"]
        else:
            where.append("delivery_id = ANY(%(ids)s::uuid[])")
            params["ids"] = list(delivery_ids)
        if rule_id:
            where.append("rule_id = %(rule)s")
            params["rule"] = rule_id
        async with translate_errors("replaying deliveries"), self._pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE actions.deliveries SET status = 'pending', next_attempt_at = %(now)s, "
                "budget_base = attempt_count, replay_count = replay_count + 1, "
                "updated_at = %(now)s, failed_at = NULL "
                f"WHERE {' AND '.join(where)} RETURNING delivery_id",
                params,
            )
            ids = [str(r["delivery_id"]) for r in await cur.fetchall()]
            if ids:
                await conn.execute("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))
            return ids

    async def discard(self, delivery_id: str, now: datetime) -> Delivery | None:
        async with translate_errors("discarding a delivery"), self._pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE actions.deliveries SET status = 'discarded', updated_at = %s "
                "WHERE delivery_id = %s AND status = 'failed' RETURNING delivery_id",
                (now, delivery_id),
            )
            changed = await cur.fetchone()
        current = await self.get_delivery(delivery_id)
        if current is not None and changed is None and current.status != DISCARDED:
            raise InvalidInput(
                f"delivery {delivery_id} is {current.status}; only failed deliveries can be "
                "discarded"
            )
        return current

    # --- job queue (workers) -------------------------------------------------------------

    async def claim(
        self, now: datetime, lease: float, worker: str, busy: Sequence[str] = ()
    ) -> Job | None:
        # A new owner token per claim: worker names repeat across replicas and restarts.
        token = f"{worker}:{uuid.uuid4()}"
        until = now + timedelta(seconds=lease)
        async with translate_errors("claiming a delivery"), self._pool.connection() as conn:
            cur = await conn.execute(
                _CLAIM, {"now": now, "lease": until, "token": token, "busy": list(busy)}
            )
            row = await cur.fetchone()
        if row is None:
            return None
        return Job(
            delivery_id=str(row["delivery_id"]),
            rule_id=str(row["rule_id"]),
            event_type=row["event_type"],
            event=row["event"],
            attempt_count=row["attempt_count"],
            round_attempts=row["attempt_count"] - row["budget_base"],
            created_at=row["created_at"],
            rule_enabled=row["enabled"],
            target=Target(
                row["target_url"],
                dict(row["target_headers"]),
                tuple(self._box.open(x) for x in row["secrets"]),
            ),
            lease_token=token,
            leased_until=until,
        )

    async def admit(self, endpoint: str, now: datetime, policy: pol.Policy) -> pol.Admission:
        async with translate_errors("checking a circuit breaker"), self._pool.connection() as conn:
            # The common case, a closed breaker, costs one read and no lock.
            cur = await conn.execute(
                "SELECT state FROM actions.breakers WHERE endpoint = %s", (endpoint,)
            )
            row = await cur.fetchone()
            if row is None or row["state"] == pol.CLOSED:
                return pol.Admission(True)
            async with conn.transaction():
                cur = await conn.execute(
                    "SELECT state, consecutive_failures, open_until, trial_until "
                    "FROM actions.breakers WHERE endpoint = %s FOR UPDATE",
                    (endpoint,),
                )
                row = await cur.fetchone()
                if row is None:
                    return pol.Admission(True)
                before = _breaker(row)
                admission, after = pol.admit(before, now, policy.lease)
                if after != before:
                    await self._save_breaker(conn, endpoint, after, now)
                return admission

    async def _save_breaker(
        self,
        conn: psycopg.AsyncConnection[DictRow],
        endpoint: str,
        b: pol.Breaker,
        now: datetime,
    ) -> None:
        await conn.execute(
            "INSERT INTO actions.breakers AS b (endpoint, state, consecutive_failures, "
            "open_until, trial_until, updated_at) VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (endpoint) DO UPDATE SET state = EXCLUDED.state, "
            "consecutive_failures = EXCLUDED.consecutive_failures, "
            "open_until = EXCLUDED.open_until, trial_until = EXCLUDED.trial_until, "
            "updated_at = EXCLUDED.updated_at",
            (endpoint, b.state, b.failures, b.open_until, b.trial_until, now),
        )

    async def reserve_slot(self, now: datetime, interval: float) -> datetime:
        async with translate_errors("reserving a rate-limit slot"), self._pool.connection() as conn:
            cur = await conn.execute(_RESERVE, {"now": now, "interval": interval})
            row = await cur.fetchone()
            assert row is not None
            slot: datetime = row["slot"]
            return slot

    async def extend(self, job: Job, until: datetime) -> bool:
        async with translate_errors("extending a lease"), self._pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE actions.deliveries SET next_attempt_at = %s, locked_until = %s "
                "WHERE delivery_id = %s AND status = 'pending' AND locked_by = %s",
                (until, until, job.delivery_id, job.lease_token),
            )
            return cur.rowcount == 1

    async def finish(
        self, job: Job, outcome: Outcome, now: datetime, policy: pol.Policy, worker: str
    ) -> bool:
        endpoint = job.target.endpoint
        async with (
            translate_errors("recording a delivery attempt"),
            self._pool.connection() as conn,
            conn.transaction(),
        ):
            # First the job, under its owner token: a claim that lost its lease (or a job
            # deleted with its rule) writes nothing at all, not its attempt, breaker or rule.
            cur = await conn.execute(
                _FINISH,
                {
                    "status": outcome.status,
                    "inc": 1 if outcome.counts_attempt else 0,
                    "next": outcome.next_attempt_at,
                    "error": _text(outcome.last_error),
                    "now": now,
                    "id": job.delivery_id,
                    "token": job.lease_token,
                },
            )
            if cur.rowcount != 1:
                return False
            if outcome.attempt is not None:
                a = outcome.attempt
                await conn.execute(
                    _INSERT_ATTEMPT,
                    (
                        job.delivery_id,
                        a.attempt,
                        a.started_at,
                        a.duration_ms,
                        _text(a.outcome, 100),
                        a.status_code,
                        _text(a.error),
                        _text(a.url),
                    ),
                )
            if outcome.breaker == pol.SUCCESS:
                cur = await conn.execute(
                    "UPDATE actions.breakers b SET state = 'closed', consecutive_failures = 0, "
                    "open_until = NULL, trial_until = NULL, updated_at = %s "
                    "FROM (SELECT state FROM actions.breakers WHERE endpoint = %s FOR UPDATE) old "
                    "WHERE b.endpoint = %s "
                    "AND (b.state <> 'closed' OR b.consecutive_failures <> 0) "
                    "RETURNING old.state",
                    (now, endpoint, endpoint),
                )
                row = await cur.fetchone()
                if row is not None and row["state"] != pol.CLOSED:
                    # Jobs that were short-circuited wait for the breaker's next trial;
                    # it just succeeded, so they are due now.
                    await conn.execute(
                        "UPDATE actions.deliveries SET next_attempt_at = %s "
                        "WHERE endpoint = %s AND status = 'pending' AND locked_by IS NULL "
                        "AND next_attempt_at > %s",
                        (now, endpoint, now),
                    )
                    await conn.execute("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))
                    log.info("circuit breaker closed", extra={"endpoint": endpoint})
            elif outcome.breaker == pol.FAILURE:
                await conn.execute(
                    "INSERT INTO actions.breakers (endpoint, state, updated_at) "
                    "VALUES (%s, 'closed', %s) ON CONFLICT (endpoint) DO NOTHING",
                    (endpoint, now),
                )
                cur = await conn.execute(
                    "SELECT state, consecutive_failures, open_until, trial_until "
                    "FROM actions.breakers WHERE endpoint = %s FOR UPDATE",
                    (endpoint,),
                )
                row = await cur.fetchone()
                assert row is not None
                before = _breaker(row)
                after = pol.on_failure(before, now, policy)
                await self._save_breaker(conn, endpoint, after, now)
                if after.state == pol.OPEN and before.state != pol.OPEN:
                    log.warning(
                        "circuit breaker opened",
                        extra={"endpoint": endpoint, "failures": after.failures},
                    )
            if outcome.disable_rule_reason:
                await conn.execute(
                    "UPDATE actions.rules SET enabled = false, disabled_reason = %s, "
                    "updated_at = %s WHERE rule_id = %s",
                    (_text(outcome.disable_rule_reason), now, job.rule_id),
                )
        return True

    async def stats(self) -> tuple[dict[str, int], int]:
        """Pending and failed delivery counts, and breakers not closed (for metrics)."""
        async with translate_errors("counting deliveries"), self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT status, count(*) AS n FROM actions.deliveries "
                "WHERE status IN ('pending', 'failed') GROUP BY status"
            )
            counts = {"pending": 0, "failed": 0}
            for row in await cur.fetchall():
                counts[row["status"]] = int(row["n"])
            cur = await conn.execute(
                "SELECT count(*) AS n FROM actions.breakers WHERE state <> 'closed'"
            )
            open_row = await cur.fetchone()
            return counts, int(open_row["n"]) if open_row else 0

    async def purge(self, now: datetime, retention: float) -> int:
        """Delete finished deliveries (delivered, discarded, suppressed) older than
        ``retention`` seconds with their attempts, and expired dedupe windows."""
        cutoff = now - timedelta(seconds=retention)
        async with translate_errors("purging old deliveries"), self._pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM actions.deliveries WHERE status IN "
                "('delivered', 'discarded', 'suppressed') AND updated_at < %s",
                (cutoff,),
            )
            await conn.execute("DELETE FROM actions.dedupe WHERE window_until < %s", (now,))
            return cur.rowcount

    async def release(self, job: Job, now: datetime) -> bool:
        async with translate_errors("releasing a delivery"), self._pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE actions.deliveries SET next_attempt_at = %s, locked_until = NULL, "
                "locked_by = NULL WHERE delivery_id = %s AND status = 'pending' "
                "AND locked_by = %s",
                (now, job.delivery_id, job.lease_token),
            )
            return cur.rowcount == 1


class PostgresJobSink:
    """The consumer's adapter: one blocking connection, reopened after a failure.
    Not thread-safe (one consumer loop)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: psycopg.Connection[DictRow] | None = None

    def _connection(self) -> psycopg.Connection[DictRow]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(
                self._url, autocommit=True, connect_timeout=5, row_factory=dict_row
            )
        return self._conn

    def enabled_rules(self) -> list[CompiledRule]:
        try:
            rows = (
                self._connection()
                .execute(
                    "SELECT rule_id, event_type_pattern, condition, target_url "
                    "FROM actions.rules WHERE enabled"
                )
                .fetchall()
            )
        except TRANSIENT as e:
            self.close()
            raise Unavailable(f"database unavailable while reading rules: {e}") from e
        out: list[CompiledRule] = []
        for r in rows:
            try:
                out.append(
                    compile_rule(
                        str(r["rule_id"]), r["event_type_pattern"], r["condition"], r["target_url"]
                    )
                )
            except InvalidInput as e:  # validated on write; only a hand-edited row gets here
                log.error("skipping a rule that does not compile", extra={"error": str(e)})
        return out

    def enqueue(self, jobs: Sequence[NewJob], now: datetime, dedupe_window: float) -> int:
        if not jobs:
            return 0
        batch = json.dumps(
            [
                {
                    "delivery_id": j.delivery_id,
                    "rule_id": j.rule_id,
                    "event_id": j.event_id,
                    "event_type": j.event_type,
                    "target_url": j.target_url,
                    "endpoint": endpoint_of(j.target_url),
                    "event": j.event,
                }
                for j in jobs
            ],
            separators=(",", ":"),
        )
        for tries in range(3):
            try:
                return self._enqueue(batch, now, dedupe_window)
            except psycopg.errors.ForeignKeyViolation:
                # A rule was deleted between the EXISTS check and the insert; the next try
                # leaves its jobs out.
                if tries == 2:
                    raise
        raise AssertionError("unreachable")

    def _enqueue(self, batch: str, now: datetime, dedupe_window: float) -> int:
        try:
            conn = self._connection()
            with conn.transaction():
                rows = conn.execute(_ENQUEUE, {"now": now, "jobs": batch}).fetchall()
                suppressed = 0
                if dedupe_window > 0:
                    until = now + timedelta(seconds=dedupe_window)
                    # UUIDv7 ids sort in creation order: the first job of a window wins.
                    for r in sorted(rows, key=lambda r: str(r["delivery_id"])):
                        won = conn.execute(
                            _DEDUPE,
                            {
                                "type": r["event_type"],
                                "url": r["target_url"],
                                "until": until,
                                "id": r["delivery_id"],
                                "now": now,
                            },
                        ).fetchone()
                        if won is None:
                            suppressed += 1
                            conn.execute(
                                "UPDATE actions.deliveries SET status = 'suppressed', "
                                "next_attempt_at = NULL, last_error = %s "
                                "WHERE delivery_id = %s",
                                (
                                    "suppressed: the same event type went to this target "
                                    f"less than {dedupe_window:g}s ago",
                                    r["delivery_id"],
                                ),
                            )
                if len(rows) > suppressed:
                    conn.execute("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))
            return len(rows)
        except TRANSIENT as e:
            self.close()
            raise Unavailable(f"database unavailable while writing delivery jobs: {e}") from e
        except psycopg.DataError as e:
            # A value PostgreSQL cannot hold (e.g. another producer's NUL in a string): the
            # batch's data, not an outage; the transaction rolled back, nothing was written.
            raise InvalidInput(f"a delivery job's event cannot be stored: {e}") from e

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None


def reseal_secrets(url: str, box: SecretBox) -> int:
    """Every rule's secrets sealed again under ``box``'s current key, in one transaction
    (``cornjacket rotate-secrets-key``); ``box`` must still open the old key. How many
    rules it re-sealed."""
    with psycopg.connect(url, row_factory=dict_row) as conn, conn.transaction():
        rows = conn.execute("SELECT rule_id, secrets FROM actions.rules FOR UPDATE").fetchall()
        for row in rows:
            conn.execute(
                "UPDATE actions.rules SET secrets = %s WHERE rule_id = %s",
                ([box.reseal(x) for x in row["secrets"]], row["rule_id"]),
            )
    return len(rows)
