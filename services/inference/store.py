"""PostgreSQL adapter for the inference checkpoint (the ``inference`` schema)."""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from services.core import json_text
from services.core.errors import Unavailable
from services.inference.detector import new_model, restore
from services.inference.service import Anomaly, Checkpoint, ModelRow, Rejected

log = logging.getLogger(__name__)

_SAVE_MODELS = """
INSERT INTO inference.models AS m
    (device, metric, model, state, observations, late, last_event_time, last_event_id,
     last_score, generation, version, updated_at)
SELECT d, k, n, s, o, l, t, e, sc, g, v + 1, now()
FROM json_to_recordset(%s::json)
    AS u(d text, k text, n text, s json, o bigint, l bigint, t timestamptz, e uuid,
         sc double precision, g bigint, v bigint)
ON CONFLICT (device, metric) DO UPDATE SET
    model = EXCLUDED.model, state = EXCLUDED.state, observations = EXCLUDED.observations,
    late = EXCLUDED.late, last_event_time = EXCLUDED.last_event_time,
    last_event_id = EXCLUDED.last_event_id, last_score = EXCLUDED.last_score,
    updated_at = EXCLUDED.updated_at, version = EXCLUDED.version
-- Only over the generation and the version the batch loaded: a reset since then
-- (generation + 1) holds, and so does another replica's checkpoint (version + 1). The row
-- is written with the loaded version + 1: a new row (loaded as version 0) with 1, so a row
-- another replica inserted meanwhile does not match it either. save() counts the rows
-- written and rolls back on a mismatch.
WHERE m.generation = EXCLUDED.generation AND m.version = EXCLUDED.version - 1
RETURNING 1
"""
_SAVE_SCORES = """
INSERT INTO inference.scores
    (event_id, metric, device, event_time, value, score, low, high, learned, anomaly)
SELECT e, k, d, t, v, s, lo, hi, le, a
FROM json_to_recordset(%s::json)
    AS u(e uuid, k text, d text, t timestamptz, v double precision, s double precision,
         lo double precision, hi double precision, le boolean, a boolean)
ON CONFLICT (event_id, metric) DO NOTHING
"""
_SAVE_ANOMALIES = """
INSERT INTO inference.anomalies (source_event_id, metric, device, event_time, payload, trace_id)
SELECT e, k, d, t, p, tr
FROM jsonb_to_recordset(%s::jsonb)
    AS u(e uuid, k text, d text, t timestamptz, p jsonb, tr text)
ON CONFLICT (source_event_id, metric) DO NOTHING
"""
# How far each partition was applied, for operators (a replaced in-memory broker starts
# again at 0, so this is a record, not what decides a redelivery: see service.py).
_SAVE_POSITIONS = """
INSERT INTO inference.positions AS p (consumer, topic, partition, next_offset)
SELECT %s, t, n, o FROM jsonb_to_recordset(%s::jsonb) AS u(t text, n integer, o bigint)
ON CONFLICT (consumer, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset
"""


class _Conflict(Exception):
    """A model row's generation or version is not the one the batch loaded."""


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt is not None else None


# The canonical form, as every event id on the bus has (ingestion makes them): taken as it is,
# without parsing (a parse per id was ~8 % of the consumer's CPU at full rate).
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _uuid_or_none(text: str | None) -> str | None:
    if not text:
        return None
    if _CANONICAL_UUID.fullmatch(text):
        return text
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


class PostgresInferenceStore:
    """Holds one connection, reopened after a failure. Not thread-safe (one consumer loop)."""

    def __init__(self, url: str, consumer: str) -> None:
        self._url = url
        self._consumer = consumer
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(
                self._url, autocommit=True, connect_timeout=5, options="-c timezone=UTC"
            )
        return self._conn

    @contextlib.contextmanager
    def _db(self, what: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        try:
            yield self._connection()
        except psycopg.OperationalError as e:
            self.close()
            raise Unavailable(f"database unavailable while {what}: {e}") from e

    def applied(self, event_ids: Sequence[str]) -> set[str]:
        ids = [i for i in (_uuid_or_none(e) for e in event_ids) if i]
        if not ids:
            return set()
        with self._db("reading applied events") as conn:
            rows = conn.execute(
                "SELECT DISTINCT event_id::text FROM inference.scores WHERE event_id = ANY(%s)",
                (ids,),
            ).fetchall()
        return {r[0] for r in rows}

    def load(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], ModelRow]:
        with self._db("loading models") as conn:
            rows = conn.execute(
                "SELECT m.device, m.metric, m.model, m.state, m.late, m.last_event_time, "
                "m.last_event_id::text, m.last_score, m.generation, m.version "
                "FROM inference.models m "
                "JOIN unnest(%s::text[], %s::text[]) AS k(d, k) "
                "ON m.device = k.d AND m.metric = k.k",
                ([d for d, _ in keys], [k for _, k in keys]),
            ).fetchall()
        # A reset model (state NULL) is a new one that keeps the row's generation. A state
        # that cannot be restored makes its key poison (its events go to the DLQ), never a
        # crash of the batch.
        out: dict[tuple[str, str], ModelRow] = {}
        for d, k, name, s, late, t, e, sc, g, v in rows:
            if s is None:
                out[(d, k)] = ModelRow(d, k, new_model(name), generation=int(g), version=int(v))
                continue
            try:
                out[(d, k)] = ModelRow(d, k, restore(s), int(late), t, e, sc, int(g), int(v))
            except (KeyError, TypeError, ValueError, OverflowError) as err:
                log.error("stored model is corrupt", extra={"device": d, "metric": k})
                out[(d, k)] = ModelRow(
                    d,
                    k,
                    new_model(name),
                    generation=int(g),
                    version=int(v),
                    corrupt=f"{type(err).__name__}: {err}",
                )
        return out

    def save(self, cp: Checkpoint) -> bool:
        models = json_text.dumps(
            [
                {
                    "d": r.device,
                    "k": r.metric,
                    "n": r.model.name,
                    "s": r.model.state(),
                    "o": r.model.n,
                    "l": r.late,
                    "t": _iso(r.last_event_time),
                    "e": _uuid_or_none(r.last_event_id),
                    "sc": r.last_score,
                    "g": r.generation,
                    "v": r.version,
                }
                for r in cp.models
            ]
        )
        scores = json_text.dumps(
            [
                {
                    "e": s.event_id,
                    "k": s.metric,
                    "d": s.device,
                    "t": s.event_time.isoformat(),
                    "v": s.value,
                    "s": s.score,
                    "lo": s.low,
                    "hi": s.high,
                    "le": s.learned,
                    "a": s.anomaly,
                }
                for s in cp.scores
                if _uuid_or_none(s.event_id)
            ]
        )
        anomalies = json_text.dumps(
            [
                {
                    "e": a.source_event_id,
                    "k": a.metric,
                    "d": a.device,
                    "t": a.event_time.isoformat(),
                    "p": a.payload,
                    "tr": a.trace_id,
                }
                for a in cp.anomalies
                if _uuid_or_none(a.source_event_id)
            ]
        )
        positions = json_text.dumps(
            [{"t": t, "n": p, "o": o} for (t, p), o in cp.positions.items()]
        )
        with self._db("saving a checkpoint") as conn:
            try:
                # Pipelined: the statements go out together and their results come back in
                # one round trip; the models' count is checked before the commit.
                with (
                    conn.pipeline(),
                    conn.transaction(),
                    conn.cursor() as written,
                    conn.cursor() as cur,
                ):
                    if cp.models:
                        written.execute(_SAVE_MODELS, (models,))
                    self._save(cur, cp, scores, anomalies, positions)
                    if cp.models and len(written.fetchall()) != len(cp.models):
                        # A model changed since the batch loaded it (a reset or another
                        # replica's checkpoint): roll back; the caller applies it again.
                        raise _Conflict
            except _Conflict:
                return False
        return True

    def _save(
        self,
        cur: psycopg.Cursor[tuple[Any, ...]],
        cp: Checkpoint,
        scores: str,
        anomalies: str,
        positions: str,
    ) -> None:
        if cp.scores:
            cur.execute(_SAVE_SCORES, (scores,))
        if cp.anomalies:
            cur.execute(_SAVE_ANOMALIES, (anomalies,))
        for d in cp.dead:
            log.error(
                "event sent to the DLQ", extra={"event_id": d.event_id or "", "error": d.error}
            )
            cur.execute(
                "INSERT INTO inference.dlq (consumer, event_id, event_payload, error_message)"
                " VALUES (%s, %s, %s, %s)",
                (
                    self._consumer,
                    _uuid_or_none(d.event_id),
                    d.raw,
                    d.error.replace("\x00", "\\x00")[:2000],
                ),
            )
        cur.execute(_SAVE_POSITIONS, (self._consumer, positions))

    def metrics(self, devices: Sequence[str]) -> dict[str, set[str]]:
        with self._db("reading the metrics of devices") as conn:
            rows = conn.execute(
                "SELECT device, metric FROM inference.models WHERE device = ANY(%s)",
                (list(devices),),
            ).fetchall()
        out: dict[str, set[str]] = {}
        for device, metric in rows:
            out.setdefault(device, set()).add(metric)
        return out

    def unsent(self, limit: int) -> list[Anomaly]:
        with self._db("reading unsent anomalies") as conn:
            rows = conn.execute(
                "SELECT source_event_id::text, metric, device, event_time, payload, trace_id "
                "FROM inference.anomalies WHERE sent_at IS NULL AND rejected_at IS NULL "
                "ORDER BY created_at LIMIT %s",
                (limit,),
            ).fetchall()
        return [Anomaly(e, k, d, t, p, tr) for e, k, d, t, p, tr in rows]

    def anomaly_times(self, devices: Sequence[str], since: datetime) -> dict[str, list[datetime]]:
        with self._db("reading recent anomalies") as conn:
            rows = conn.execute(
                "SELECT device, event_time FROM inference.anomalies "
                "WHERE device = ANY(%s) AND event_time >= %s",
                (list(devices), since),
            ).fetchall()
        out: dict[str, list[datetime]] = {}
        for device, t in rows:
            out.setdefault(device, []).append(t)
        return out

    def mark_sent(self, sent: Sequence[tuple[Anomaly, str | Rejected]]) -> None:
        if not sent:
            return
        rows = json_text.dumps(
            [
                {"e": a.source_event_id, "k": a.metric, "i": _uuid_or_none(event_id)}
                for a, event_id in sent
                if not isinstance(event_id, Rejected)
            ]
        )
        rejected = json_text.dumps(
            [
                {"e": a.source_event_id, "k": a.metric, "r": r.error[:2000]}
                for a, r in sent
                if isinstance(r, Rejected)
            ]
        )
        now = datetime.now(UTC)
        with self._db("recording sent anomalies") as conn, conn.pipeline(), conn.transaction():
            conn.execute(
                "UPDATE inference.anomalies a SET sent_at = %s, anomaly_event_id = u.i "
                "FROM jsonb_to_recordset(%s::jsonb) AS u(e uuid, k text, i uuid) "
                "WHERE a.source_event_id = u.e AND a.metric = u.k",
                (now, rows),
            )
            conn.execute(
                "UPDATE inference.anomalies a SET rejected_at = %s, rejected_error = u.r "
                "FROM jsonb_to_recordset(%s::jsonb) AS u(e uuid, k text, r text) "
                "WHERE a.source_event_id = u.e AND a.metric = u.k",
                (now, rejected),
            )

    def ping(self) -> bool:
        try:
            self._connection().execute("SELECT 1")
            return True
        except psycopg.Error:
            self.close()
            return False

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
