"""Synchronous client: one gRPC channel to Envoy (or a service), typed calls for the common
operations and the generated stubs for everything else."""

from __future__ import annotations

import json
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import grpc
from cornjacket.v1 import (
    actions_pb2_grpc,
    audit_pb2,
    audit_pb2_grpc,
    dlq_pb2,
    dlq_pb2_grpc,
    inference_pb2,
    inference_pb2_grpc,
    ingestion_pb2,
    ingestion_pb2_grpc,
    lineage_pb2,
    lineage_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
    series_pb2,
    series_pb2_grpc,
    watch_pb2,
    watch_pb2_grpc,
)

from cornjacket_sdk.errors import mapped
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
from cornjacket_sdk.streams import Stream, event_of, projection_of

DEFAULT_TIMEOUT = 10.0
# Retried by gRPC itself, with backoff: UNAVAILABLE means nothing was done (for ingest, give
# each event an idempotency key so a retry after a lost answer cannot store it twice).
_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [
                    {"service": "cornjacket.v1." + s}
                    for s in (
                        "IngestionService",
                        "QueryService",
                        "DeadLetterService",
                        "LineageService",
                        "ActionService",
                        "AuditService",
                        "SeriesService",
                        "InferenceService",
                    )
                ],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


def channel_options(extra: Sequence[tuple[str, Any]] = ()) -> list[tuple[str, Any]]:
    return [
        ("grpc.service_config", _SERVICE_CONFIG),
        ("grpc.enable_retries", 1),
        ("grpc.keepalive_time_ms", 30_000),
        *extra,
    ]


def make_channel(
    target: str,
    *,
    tls: bool = False,
    root_certificates: bytes | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.Channel:
    if tls:
        creds = grpc.ssl_channel_credentials(root_certificates=root_certificates)
        return grpc.secure_channel(target, creds, options=channel_options(options))
    return grpc.insecure_channel(target, options=channel_options(options))


def series_request(
    device: str, metric: str, start: Any, end: Any, bucket: str
) -> series_pb2.GetSeriesRequest:
    """``start``/``end``: RFC 3339 text or timezone-aware datetimes."""
    return series_pb2.GetSeriesRequest(
        device=device,
        metric=metric,
        start=start if isinstance(start, str) else start.isoformat(),
        end=end if isinstance(end, str) else end.isoformat(),
        bucket=bucket,
    )


def audit_request(
    since: str, until: str, page_size: int, page_token: str
) -> audit_pb2.ListAuditRecordsRequest:
    return audit_pb2.ListAuditRecordsRequest(
        from_time=since, to_time=until, page_size=page_size, page_token=page_token
    )


class Stubs:
    """The generated stubs of every service on one channel, and the per-call options."""

    def __init__(self, channel: Any, token: str | None, timeout: float) -> None:
        self.timeout = timeout
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.ingestion = ingestion_pb2_grpc.IngestionServiceStub(channel)
        self.query = query_pb2_grpc.QueryServiceStub(channel)
        self.dead_letters = dlq_pb2_grpc.DeadLetterServiceStub(channel)
        self.lineage_service = lineage_pb2_grpc.LineageServiceStub(channel)
        self.actions = actions_pb2_grpc.ActionServiceStub(channel)
        self.audit = audit_pb2_grpc.AuditServiceStub(channel)
        self.series = series_pb2_grpc.SeriesServiceStub(channel)
        self.inference = inference_pb2_grpc.InferenceServiceStub(channel)
        self.watch = watch_pb2_grpc.WatchServiceStub(channel)

    def stream_options(self) -> dict[str, Any]:
        """A stream's call options: the token, no deadline (it lasts as long as it is read)."""
        return {"metadata": self._metadata}

    def call_options(self, metadata: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
        """``timeout`` and ``metadata`` for a raw stub call, e.g.
        ``cj.actions.ListRules(req, **cj.call_options())``."""
        return {"timeout": self.timeout, "metadata": (*self._metadata, *metadata)}


class Client(Stubs):
    """``Client("127.0.0.1:8080")``: Envoy's address (host:port). ``token`` is sent as a bearer
    token on every call; ``tls=True`` uses TLS (system roots unless ``root_certificates``)."""

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
        self.channel = make_channel(
            target, tls=tls, root_certificates=root_certificates, options=options
        )
        super().__init__(self.channel, token, timeout)

    @mapped
    def ingest(self, request: ingestion_pb2.IngestEventRequest) -> Accepted:
        return Accepted.from_proto(self.ingestion.IngestEvent(request, **self.call_options()))

    @mapped
    def ingest_many(self, requests: Sequence[ingestion_pb2.IngestEventRequest]) -> BatchResult:
        return BatchResult.from_proto(
            self.ingestion.IngestEvents(
                ingestion_pb2.IngestEventsRequest(events=list(requests)), **self.call_options()
            )
        )

    @mapped
    def get_projection(self, projection_type: str, aggregate_id: str) -> Projection:
        """The projection (``state`` is a dict); NotFound when there is none yet."""
        return Projection.from_proto(
            self.query.GetProjection(
                query_pb2.GetProjectionRequest(
                    projection_type=projection_type, aggregate_id=aggregate_id
                ),
                **self.call_options(),
            )
        )

    @mapped
    def list_projections(
        self, projection_type: str, *, limit: int = 20, offset: int = 0
    ) -> ProjectionPage:
        return ProjectionPage.from_proto(
            self.query.ListProjections(
                query_pb2.ListProjectionsRequest(
                    projection_type=projection_type, limit=limit, offset=offset
                ),
                **self.call_options(),
            )
        )

    @mapped
    def lineage(self, event_id: str) -> Lineage:
        return Lineage.from_proto(
            self.lineage_service.GetEventLineage(
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
    ) -> Stream[Event]:
        """Events as they reach the bus, from now (or after ``position``): ``for ev in
        cj.watch_events(event_type_prefix="sensor.")``; ``stream.position`` resumes."""

        def open_call(at: str) -> Any:
            return self.watch.WatchEvents(
                watch_pb2.WatchEventsRequest(
                    event_type_prefix=event_type_prefix, aggregate_id=aggregate_id, position=at
                ),
                **self.stream_options(),
            )

        return Stream(open_call, event_of, position=position, resume=resume)

    def watch_projection(
        self,
        projection_type: str,
        aggregate_id: str = "",
        *,
        position: str = "",
        resume: bool = True,
    ) -> Stream[Projection]:
        """One projection (or every one of a type): the current state first (then
        ``stream.current`` is True), then each change."""

        def open_call(at: str) -> Any:
            return self.watch.WatchProjection(
                watch_pb2.WatchProjectionRequest(
                    projection_type=projection_type, aggregate_id=aggregate_id, position=at
                ),
                **self.stream_options(),
            )

        return Stream(
            open_call, projection_of, position=position, snapshot=not position, resume=resume
        )

    @mapped
    def list_dead_letters(
        self, *, status: str = "", consumer: str = "", limit: int = 20, offset: int = 0
    ) -> Plain:
        response = self.dead_letters.ListDeadLetters(
            dlq_pb2.ListDeadLettersRequest(
                filter=dlq_pb2.DeadLetterFilter(status=status, consumer=consumer),
                limit=limit,
                offset=offset,
            ),
            **self.call_options(),
        )
        return plain(response)

    @mapped
    def list_audit(
        self, *, since: str = "", until: str = "", page_size: int = 20, page_token: str = ""
    ) -> Plain:
        """Admin calls, oldest first (needs the admin scope); ``since``/``until`` are RFC 3339
        bounds on when a call began; pass ``next_page_token`` back for the next page."""
        response = self.audit.ListAuditRecords(
            audit_request(since, until, page_size, page_token), **self.call_options()
        )
        return plain(response)

    @mapped
    def get_series(
        self, device: str, metric: str, start: Any, end: Any, *, bucket: str = "1m"
    ) -> Plain:
        """A device's metric over [start, end) in buckets (1s..1d) with count, sum, min, max,
        avg, first and last each (needs the read scope)."""
        response = self.series.GetSeries(
            series_request(device, metric, start, end, bucket), **self.call_options()
        )
        return plain(response)

    @mapped
    def latest_values(self, device: str) -> Plain:
        """The newest value of every metric of a device."""
        response = self.series.GetLatest(
            series_pb2.GetLatestRequest(device=device), **self.call_options()
        )
        return plain(response)

    @mapped
    def list_series(
        self, *, device_prefix: str = "", limit: int = 100, page_token: str = ""
    ) -> Plain:
        response = self.series.ListSeries(
            series_pb2.ListSeriesRequest(
                device_prefix=device_prefix, limit=limit, page_token=page_token
            ),
            **self.call_options(),
        )
        return plain(response)

    # --- anomaly detection (issue 18) -----------------------------------------------------
    @mapped
    def list_scores(
        self, device: str, *, metric: str = "", page_size: int = 100, page_token: str = ""
    ) -> Plain:
        """A device's scores oldest first (read scope); pass ``next_page_token`` back."""
        response = self.inference.ListScores(
            inference_pb2.ListScoresRequest(
                device=device, metric=metric, page_size=page_size, page_token=page_token
            ),
            **self.call_options(),
        )
        return plain(response)

    @mapped
    def list_anomalies(
        self, *, device: str = "", page_size: int = 100, page_token: str = ""
    ) -> Plain:
        """Anomalies newest first, of one device or of all (read scope)."""
        response = self.inference.ListAnomalies(
            inference_pb2.ListAnomaliesRequest(
                device=device, page_size=page_size, page_token=page_token
            ),
            **self.call_options(),
        )
        return plain(response)

    @mapped
    def model_status(self, device: str) -> Plain:
        response = self.inference.GetModelStatus(
            inference_pb2.GetModelStatusRequest(device=device), **self.call_options()
        )
        return plain(response)

    @mapped
    def reset_model(self, device: str, *, metric: str = "") -> int:
        """Forget a device's models (admin scope); returns how many were reset."""
        response: inference_pb2.ResetModelResponse = self.inference.ResetModel(
            inference_pb2.ResetModelRequest(device=device, metric=metric), **self.call_options()
        )
        return int(response.reset)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
