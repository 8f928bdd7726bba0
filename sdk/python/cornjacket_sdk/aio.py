"""asyncio client: the same calls as ``Client``, awaited (grpc.aio)."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any

import grpc
from cornjacket.v1 import ingestion_pb2, lineage_pb2, query_pb2, series_pb2, watch_pb2

from cornjacket_sdk.client import (
    DEFAULT_TIMEOUT,
    Stubs,
    audit_request,
    channel_options,
    series_request,
)
from cornjacket_sdk.errors import mapped_async
from cornjacket_sdk.models import (
    Accepted,
    BatchResult,
    Event,
    Lineage,
    Plain,
    Projection,
    ProjectionPage,
    plain,
)
from cornjacket_sdk.streams import AsyncStream, event_of, projection_of


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

    @mapped_async
    async def ingest(self, request: ingestion_pb2.IngestEventRequest) -> Accepted:
        return Accepted.from_proto(await self.ingestion.IngestEvent(request, **self.call_options()))

    @mapped_async
    async def ingest_many(
        self, requests: Sequence[ingestion_pb2.IngestEventRequest]
    ) -> BatchResult:
        return BatchResult.from_proto(
            await self.ingestion.IngestEvents(
                ingestion_pb2.IngestEventsRequest(events=list(requests)), **self.call_options()
            )
        )

    @mapped_async
    async def get_projection(self, projection_type: str, aggregate_id: str) -> Projection:
        return Projection.from_proto(
            await self.query.GetProjection(
                query_pb2.GetProjectionRequest(
                    projection_type=projection_type, aggregate_id=aggregate_id
                ),
                **self.call_options(),
            )
        )

    @mapped_async
    async def list_projections(
        self, projection_type: str, *, limit: int = 20, offset: int = 0
    ) -> ProjectionPage:
        return ProjectionPage.from_proto(
            await self.query.ListProjections(
                query_pb2.ListProjectionsRequest(
                    projection_type=projection_type, limit=limit, offset=offset
                ),
                **self.call_options(),
            )
        )

    @mapped_async
    async def lineage(self, event_id: str) -> Lineage:
        return Lineage.from_proto(
            await self.lineage_service.GetEventLineage(
                lineage_pb2.GetEventLineageRequest(event_id=event_id), **self.call_options()
            )
        )

    # --- live streams (issue 19) ----------------------------------------------------------
    def watch_events(
        self,
        *,
        event_type_prefix: str = "",
        aggregate_id: str = "",
        position: str = "",
        resume: bool = True,
    ) -> AsyncStream[Event]:
        """``async for ev in cj.watch_events(...)``: see Client.watch_events."""

        def open_call(at: str) -> Any:
            return self.watch.WatchEvents(
                watch_pb2.WatchEventsRequest(
                    event_type_prefix=event_type_prefix, aggregate_id=aggregate_id, position=at
                ),
                **self.stream_options(),
            )

        return AsyncStream(open_call, event_of, position=position, resume=resume)

    def watch_projection(
        self,
        projection_type: str,
        aggregate_id: str = "",
        *,
        position: str = "",
        resume: bool = True,
    ) -> AsyncStream[Projection]:
        """``async for p in cj.watch_projection("sensor_state", "dev-1")``: the current
        state first, then each change (see Client.watch_projection)."""

        def open_call(at: str) -> Any:
            return self.watch.WatchProjection(
                watch_pb2.WatchProjectionRequest(
                    projection_type=projection_type, aggregate_id=aggregate_id, position=at
                ),
                **self.stream_options(),
            )

        return AsyncStream(
            open_call, projection_of, position=position, snapshot=not position, resume=resume
        )

    @mapped_async
    async def list_audit(
        self, *, since: str = "", until: str = "", page_size: int = 20, page_token: str = ""
    ) -> Plain:
        """Admin calls, oldest first (needs the admin scope): see Client.list_audit."""
        response = await self.audit.ListAuditRecords(
            audit_request(since, until, page_size, page_token), **self.call_options()
        )
        return plain(response)

    @mapped_async
    async def get_series(
        self, device: str, metric: str, start: Any, end: Any, *, bucket: str = "1m"
    ) -> Plain:
        """See Client.get_series."""
        response = await self.series.GetSeries(
            series_request(device, metric, start, end, bucket), **self.call_options()
        )
        return plain(response)

    @mapped_async
    async def latest_values(self, device: str) -> Plain:
        response = await self.series.GetLatest(
            series_pb2.GetLatestRequest(device=device), **self.call_options()
        )
        return plain(response)

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
