"""asyncio client: the same calls as ``Client``, awaited (grpc.aio)."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any

import grpc
from cornjacket.v1 import audit_pb2, ingestion_pb2, lineage_pb2, query_pb2, series_pb2

from cornjacket_sdk.client import (
    DEFAULT_TIMEOUT,
    Stubs,
    audit_request,
    channel_options,
    series_request,
)


class AsyncClient(Stubs):
    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        tls: bool = False,
        root_certificates: bytes | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        opts = channel_options(options)
        if tls:
            creds = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self.channel = grpc.aio.secure_channel(target, creds, options=opts)
        else:
            self.channel = grpc.aio.insecure_channel(target, options=opts)
        super().__init__(self.channel, token, timeout)

    async def ingest(
        self, request: ingestion_pb2.IngestEventRequest
    ) -> ingestion_pb2.IngestEventResponse:
        response: ingestion_pb2.IngestEventResponse = await self.ingestion.IngestEvent(
            request, **self.call_options()
        )
        return response

    async def ingest_many(
        self, requests: Sequence[ingestion_pb2.IngestEventRequest]
    ) -> ingestion_pb2.IngestEventsResponse:
        response: ingestion_pb2.IngestEventsResponse = await self.ingestion.IngestEvents(
            ingestion_pb2.IngestEventsRequest(events=list(requests)), **self.call_options()
        )
        return response

    async def get_projection(self, projection_type: str, aggregate_id: str) -> query_pb2.Projection:
        response: query_pb2.Projection = await self.query.GetProjection(
            query_pb2.GetProjectionRequest(
                projection_type=projection_type, aggregate_id=aggregate_id
            ),
            **self.call_options(),
        )
        return response

    async def lineage(self, event_id: str) -> lineage_pb2.EventLineage:
        response: lineage_pb2.EventLineage = await self.lineage_service.GetEventLineage(
            lineage_pb2.GetEventLineageRequest(event_id=event_id), **self.call_options()
        )
        return response

    async def list_audit(
        self, *, since: str = "", until: str = "", page_size: int = 20, page_token: str = ""
    ) -> audit_pb2.ListAuditRecordsResponse:
        """Admin calls, oldest first (needs the admin scope): see Client.list_audit."""
        response: audit_pb2.ListAuditRecordsResponse = await self.audit.ListAuditRecords(
            audit_request(since, until, page_size, page_token), **self.call_options()
        )
        return response

    async def get_series(
        self, device: str, metric: str, start: Any, end: Any, *, bucket: str = "1m"
    ) -> series_pb2.GetSeriesResponse:
        """See Client.get_series."""
        response: series_pb2.GetSeriesResponse = await self.series.GetSeries(
            series_request(device, metric, start, end, bucket), **self.call_options()
        )
        return response

    async def latest_values(self, device: str) -> series_pb2.GetLatestResponse:
        response: series_pb2.GetLatestResponse = await self.series.GetLatest(
            series_pb2.GetLatestRequest(device=device), **self.call_options()
        )
        return response

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
