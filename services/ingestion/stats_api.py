"""Ingestion's figures for the console overview (issue 19): events accepted in the last
minute, and the outbox's depth and oldest row. A PostgreSQL reader plus its internal gRPC
servicer (the query service asks it; the edge routes nothing here).

Every query is bounded whatever the backlog: counts stop at a cap (the answer says so), and
the oldest row is found with one index probe per outbox slot (64), not a scan.
"""

from __future__ import annotations

import grpc
from cornjacket.v1 import stats_pb2, stats_pb2_grpc

from services.infra.codec import to_timestamp
from services.infra.grpc_errors import grpc_errors
from services.infra.postgres import DictPool, translate_errors

# At most this many rows are counted (index entries for the event store): a count is then
# a few milliseconds even under a backlog; above it the answer says "capped".
COUNT_CAP = 100_000

_SQL = """
SELECT
  (SELECT count(*) FROM (SELECT 1 FROM ingestion.event_store
                         WHERE ingested_at > now() - interval '60 seconds'
                         LIMIT %(cap)s) AS recent) AS accepted,
  (SELECT count(*) FROM (SELECT 1 FROM ingestion.outbox LIMIT %(cap)s) AS waiting) AS depth,
  (SELECT min(first_at) FROM (
      SELECT (SELECT o.created_at FROM ingestion.outbox o
              WHERE o.slot = s.slot ORDER BY o.seq LIMIT 1) AS first_at
      FROM generate_series(0, 63) AS s(slot)) AS firsts) AS oldest,
  now() AS now
"""


class IngestStatsReader:
    def __init__(self, pool: DictPool) -> None:
        self._pool = pool

    async def read(self) -> stats_pb2.IngestStats:
        async with translate_errors("reading ingestion's figures"), self._pool.connection() as conn:
            cur = await conn.execute(_SQL, {"cap": COUNT_CAP})
            row = await cur.fetchone()
        if row is None:  # a SELECT without FROM always returns one row
            raise RuntimeError("ingestion's figures query returned no row")
        oldest = row["oldest"]
        age = max(0.0, (row["now"] - oldest).total_seconds()) if oldest is not None else 0.0
        return stats_pb2.IngestStats(
            accepted_last_minute=row["accepted"],
            accepted_last_minute_capped=row["accepted"] >= COUNT_CAP,
            outbox_depth=row["depth"],
            outbox_depth_capped=row["depth"] >= COUNT_CAP,
            outbox_oldest_age_seconds=age,
            measured_at=to_timestamp(row["now"]),
        )


class IngestStatsServicer(stats_pb2_grpc.IngestStatsServiceServicer):
    def __init__(self, reader: IngestStatsReader) -> None:
        self._reader = reader

    @grpc_errors
    async def GetIngestStats(
        self, request: stats_pb2.GetIngestStatsRequest, context: grpc.aio.ServicerContext
    ) -> stats_pb2.IngestStats:
        return await self._reader.read()
