"""Ingestion's side of lineage: where an accepted event is (outbox or event store) and
where the relay published it. A PostgreSQL reader plus its gRPC servicer."""

from __future__ import annotations

import uuid

import grpc
from cornjacket.v1 import lineage_pb2, lineage_pb2_grpc

from services.core.errors import InvalidInput, NotFound
from services.core.events import Event
from services.infra.codec import event_to_proto, to_timestamp
from services.infra.event_store import COLUMNS, row_to_event
from services.infra.grpc_errors import grpc_errors
from services.infra.postgres import DictPool, translate_errors


class EventRecordReader:
    def __init__(self, pool: DictPool) -> None:
        self._pool = pool

    async def get(self, event_id: str) -> lineage_pb2.EventRecord | None:
        async with translate_errors("reading an event record"), self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT event_payload, retry_count, last_error FROM ingestion.outbox "
                "WHERE outbox_id = %s",
                (event_id,),
            )
            waiting = await cur.fetchone()
            cur = await conn.execute(
                f"SELECT {COLUMNS}, created_at FROM ingestion.event_store WHERE event_id = %s",
                (event_id,),
            )
            stored = await cur.fetchone()
            cur = await conn.execute(
                'SELECT topic, "partition", "offset", published_at '
                "FROM ingestion.event_publications WHERE event_id = %s ORDER BY published_at",
                (event_id,),
            )
            published = await cur.fetchall()
        if stored is not None:
            record = lineage_pb2.EventRecord(
                event=event_to_proto(row_to_event(stored)), state="stored"
            )
            record.stored_at.CopyFrom(to_timestamp(stored["created_at"]))
        elif waiting is not None:
            record = lineage_pb2.EventRecord(
                event=event_to_proto(Event.from_dict(waiting["event_payload"])),
                state="outbox",
                outbox_retry_count=waiting["retry_count"],
                outbox_last_error=waiting["last_error"] or "",
            )
        else:
            return None
        for p in published:
            record.publications.add(
                topic=p["topic"],
                partition=p["partition"],
                offset=p["offset"],
                published_at=to_timestamp(p["published_at"]),
            )
        return record


class EventRecordServicer(lineage_pb2_grpc.EventRecordServiceServicer):
    def __init__(self, reader: EventRecordReader) -> None:
        self._reader = reader

    @grpc_errors
    async def GetEventRecord(
        self, request: lineage_pb2.GetEventRecordRequest, context: grpc.aio.ServicerContext
    ) -> lineage_pb2.EventRecord:
        try:
            uuid.UUID(request.event_id)
        except ValueError:
            raise InvalidInput(f"event_id {request.event_id[:80]!r} is not a UUID") from None
        record = await self._reader.get(request.event_id)
        if record is None:
            raise NotFound(f"ingestion never accepted an event {request.event_id}")
        return record
