"""PostgreSQL adapter for a rebuild's target: the aside table and the swap."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from services.core.clock import FixedClock
from services.core.errors import CornjacketError
from services.eventhandler.projection_store import UPSERT_ASIDE, upsert_batch
from services.eventhandler.projectors import ProjectionUpdate

# Rows of the rebuilt types where the live table and the rebuild disagree on what a
# projection says (its state or the event it last reflects); updated_at is not compared.
_DIFFERENCES = """
SELECT count(*) FROM eventhandler.projections l
FULL JOIN eventhandler.projections_rebuild r
    ON l.projection_type = r.projection_type AND l.aggregate_id = r.aggregate_id
WHERE coalesce(l.projection_type, r.projection_type) = ANY(%s)
  AND (l.state IS DISTINCT FROM r.state OR l.last_event_id IS DISTINCT FROM r.last_event_id)
"""
# Live rows join the aside table: a live row newer than its rebuilt counterpart (applied
# while the rebuild ran) wins, and so does one the event store knows nothing of yet;
# otherwise the rebuilt row wins but keeps the live projection_id.
_MERGE_LIVE = """
INSERT INTO eventhandler.projections_rebuild AS r
    (projection_id, projection_type, aggregate_id, state, last_event_id,
     last_event_timestamp, updated_at)
SELECT projection_id, projection_type, aggregate_id, state, last_event_id,
       last_event_timestamp, updated_at
FROM eventhandler.projections WHERE projection_type = ANY(%s)
ON CONFLICT (projection_type, aggregate_id) DO UPDATE SET
    projection_id = EXCLUDED.projection_id,
    state = CASE WHEN _NEWER_ THEN EXCLUDED.state ELSE r.state END,
    last_event_id = CASE WHEN _NEWER_ THEN EXCLUDED.last_event_id ELSE r.last_event_id END,
    last_event_timestamp = CASE WHEN _NEWER_
        THEN EXCLUDED.last_event_timestamp ELSE r.last_event_timestamp END,
    updated_at = CASE WHEN _NEWER_ THEN EXCLUDED.updated_at ELSE r.updated_at END
""".replace(
    "_NEWER_",
    "(r.last_event_timestamp, r.last_event_id)"
    " < (EXCLUDED.last_event_timestamp, EXCLUDED.last_event_id)",
)
_REBUILD_LOCK = "cj-projection-rebuild"


class AsideTable:
    """eventhandler.projections_rebuild and the swap into eventhandler.projections."""

    def __init__(self, url: str) -> None:
        self._conn = psycopg.connect(url, autocommit=True)

    def close(self) -> None:
        self._conn.close()

    def begin(self, projection_types: Sequence[str]) -> None:
        locked = self._conn.execute(
            "SELECT pg_try_advisory_lock(hashtext(%s))", (_REBUILD_LOCK,)
        ).fetchone()
        if not locked or not locked[0]:
            raise CornjacketError("another projection rebuild is running; try again later")
        self._conn.execute("TRUNCATE eventhandler.projections_rebuild")

    def write(self, updates: Sequence[ProjectionUpdate], clock: FixedClock) -> None:
        self._conn.execute(UPSERT_ASIDE, (clock.now(), upsert_batch(updates)))

    def differences(self, projection_types: Sequence[str]) -> int:
        row = self._conn.execute(_DIFFERENCES, (list(projection_types),)).fetchone()
        return int(row[0]) if row else 0

    def swap(self, projection_types: Sequence[str]) -> int:
        types = list(projection_types)
        with self._conn.transaction():
            # Blocks the handler's writes (not readers) until commit, so nothing it applies
            # falls between the merge and the replacement.
            self._conn.execute("LOCK TABLE eventhandler.projections IN EXCLUSIVE MODE")
            self._conn.execute(_MERGE_LIVE, (types,))
            self._conn.execute(
                "DELETE FROM eventhandler.projections WHERE projection_type = ANY(%s)", (types,)
            )
            cur = self._conn.execute(
                """
                INSERT INTO eventhandler.projections
                    (projection_id, projection_type, aggregate_id, state, last_event_id,
                     last_event_timestamp, updated_at)
                SELECT projection_id, projection_type, aggregate_id, state, last_event_id,
                       last_event_timestamp, updated_at
                FROM eventhandler.projections_rebuild WHERE projection_type = ANY(%s)
                """,
                (types,),
            )
            rows = cur.rowcount
        self._conn.execute("TRUNCATE eventhandler.projections_rebuild")
        self._conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (_REBUILD_LOCK,))
        return rows
