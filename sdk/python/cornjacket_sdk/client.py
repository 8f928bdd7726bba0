"""Synchronous client: one gRPC channel to Envoy (or a service), typed calls for the common
operations and the generated stubs for everything else."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import grpc
from cornjacket.v1 import (
    actions_pb2,
    actions_pb2_grpc,
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
    stats_pb2,
    stats_pb2_grpc,
    watch_pb2,
    watch_pb2_grpc,
)

from cornjacket_sdk import build
from cornjacket_sdk.build import audit_request, keyed, keyed_batch, series_request
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
# Calls that must not be sent twice: each makes something new or acts on what it finds
# (a second rule, the next batch of dead letters replayed, a delete or discard answered
# NotFound after it worked). Through Envoy, UNAVAILABLE does not mean nothing was done: a
# route timeout (504) and an upstream reset after the request went out (503) both reach the
# client as UNAVAILABLE while the service may have committed. These are not retried (the
# caller sees Unavailable and can check); a method's own entry overrides its service's.
NOT_RETRIED = (
    ("ActionService", "CreateRule"),
    ("ActionService", "DeleteRule"),
    ("ActionService", "ReplayDeliveries"),
    ("ActionService", "DiscardDelivery"),
    ("DeadLetterService", "ReplayDeadLetters"),
    ("DeadLetterService", "DiscardDeadLetters"),
    ("InferenceService", "ResetModel"),
)
# The rest are retried by gRPC itself, with backoff, after UNAVAILABLE: reads and updates
# that leave the same state when repeated (for ingest, give each event an idempotency key so
# a retry after a lost answer cannot store it twice).
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
                        "StatsService",
                    )
                ],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            },
            {
                "name": [
                    {"service": "cornjacket.v1." + service, "method": method}
                    for service, method in NOT_RETRIED
                ]
            },
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
        self.stats = stats_pb2_grpc.StatsServiceStub(channel)

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
        answer = self.ingestion.IngestEvent(keyed(request), **self.call_options())
        return Accepted.from_proto(answer)

    @mapped
    def ingest_many(self, requests: Sequence[ingestion_pb2.IngestEventRequest]) -> BatchResult:
        return BatchResult.from_proto(
            self.ingestion.IngestEvents(keyed_batch(requests), **self.call_options())
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
        """Dead letters newest first (admin scope); ``status``: "pending", "replayed" or
        "discarded"; ``consumer``: the consumer that gave up on them."""
        response = self.dead_letters.ListDeadLetters(
            build.list_dead_letters(status, consumer, limit, offset), **self.call_options()
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
        self,
        device: str,
        metric: str,
        start: Any,
        end: Any,
        *,
        bucket: str = "1m",
        aggregates: Sequence[str] = (),
    ) -> Plain:
        """A device's metric over [start, end) in buckets (1s..1d) with count, sum, min, max,
        avg, first and last each, or only the ``aggregates`` named (the other columns are
        empty lists); needs the read scope."""
        response = self.series.GetSeries(
            series_request(device, metric, start, end, bucket, aggregates), **self.call_options()
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

    # --- rules, deliveries, breakers (admin scope) ----------------------------------------
    @mapped
    def create_rule(
        self,
        name: str,
        event_type_pattern: str,
        url: str,
        *,
        condition: str = "",
        headers: Mapping[str, Any] | None = None,
        secrets: Sequence[str] = (),
        enabled: bool = True,
    ) -> Plain:
        """A webhook rule (admin scope): events whose type matches ``event_type_pattern``
        ("sensor.reading", "sensor.*", "*") and ``condition`` are posted to ``url``. Without
        ``secrets`` one is generated and returned once as ``generated_secret``. A bad pattern,
        condition or target raises InvalidArgument (the condition's with its position)."""
        request = build.create_rule(
            name, event_type_pattern, url, condition, headers, secrets, enabled
        )
        return plain(self.actions.CreateRule(request, **self.call_options()))

    @mapped
    def get_rule(self, rule_id: str) -> Plain:
        """A rule by id (admin scope); NotFound when there is none."""
        request = actions_pb2.GetRuleRequest(rule_id=rule_id)
        return plain(self.actions.GetRule(request, **self.call_options()))

    @mapped
    def list_rules(self, *, limit: int | None = None, offset: int = 0) -> Plain:
        """A page of rules (admin scope): ``rules``, ``total``, ``limit`` (1..100, default
        20), ``offset``."""
        request = build.list_rules(limit, offset)
        return plain(self.actions.ListRules(request, **self.call_options()))

    @mapped
    def update_rule(
        self,
        rule_id: str,
        *,
        name: str | None = None,
        event_type_pattern: str | None = None,
        condition: str | None = None,
        url: str | None = None,
        headers: Mapping[str, Any] | None = None,
        secrets: Sequence[str] = (),
    ) -> Plain:
        """Change the fields given (admin scope); ``condition=""`` removes the condition; a
        ``url`` replaces the target (empty ``secrets`` keep the current ones)."""
        request = build.update_rule(
            rule_id, name, event_type_pattern, condition, url, headers, secrets
        )
        return plain(self.actions.UpdateRule(request, **self.call_options()))

    @mapped
    def enable_rule(self, rule_id: str) -> Plain:
        """Enable a rule (admin scope); returns it."""
        request = actions_pb2.EnableRuleRequest(rule_id=rule_id)
        return plain(self.actions.EnableRule(request, **self.call_options()))

    @mapped
    def disable_rule(self, rule_id: str, *, reason: str = "") -> Plain:
        """Disable a rule (admin scope); ``reason`` is kept as its ``disabled_reason``."""
        request = actions_pb2.DisableRuleRequest(rule_id=rule_id, reason=reason)
        return plain(self.actions.DisableRule(request, **self.call_options()))

    @mapped
    def delete_rule(self, rule_id: str) -> None:
        """Delete a rule with its deliveries (admin scope); NotFound when there is none."""
        request = actions_pb2.DeleteRuleRequest(rule_id=rule_id)
        self.actions.DeleteRule(request, **self.call_options())

    @mapped
    def test_rule(
        self,
        event_type: str,
        payload: Mapping[str, Any] | None = None,
        *,
        aggregate_id: str = "",
        source: str = "",
        rule_id: str = "",
        event_type_pattern: str = "",
        condition: str = "",
    ) -> Plain:
        """Whether a sample event would match a rule (admin scope): an existing one
        (``rule_id``) or ``event_type_pattern`` and ``condition`` given here. Nothing is
        stored or sent. ``matched``, ``pattern_matched``, ``condition_matched``."""
        request = build.rule_test(
            event_type, aggregate_id, payload, rule_id, event_type_pattern, condition, source
        )
        return plain(self.actions.TestRule(request, **self.call_options()))

    @mapped
    def list_deliveries(
        self,
        *,
        rule_id: str = "",
        status: str = "",
        event_id: str = "",
        since: str | datetime = "",
        until: str | datetime = "",
        limit: int | None = None,
        offset: int = 0,
    ) -> Plain:
        """Deliveries newest first with their attempts (admin scope); ``status="failed"``
        lists the failed ones; ``since``/``until``: RFC 3339 or aware datetimes."""
        request = build.list_deliveries(rule_id, status, since, until, event_id, limit, offset)
        return plain(self.actions.ListDeliveries(request, **self.call_options()))

    @mapped
    def get_delivery(self, delivery_id: str) -> Plain:
        """A delivery with its attempts (admin scope)."""
        request = actions_pb2.GetDeliveryRequest(delivery_id=delivery_id)
        return plain(self.actions.GetDelivery(request, **self.call_options()))

    @mapped
    def replay_deliveries(
        self, delivery_ids: Sequence[str] = (), *, all_failed: bool = False, rule_id: str = ""
    ) -> Plain:
        """Send failed (or discarded) deliveries again (admin scope): the ids given, or with
        ``all_failed=True`` every failed one (of ``rule_id``, if given)."""
        request = build.replay_deliveries(delivery_ids, all_failed, rule_id)
        return plain(self.actions.ReplayDeliveries(request, **self.call_options()))

    @mapped
    def discard_delivery(self, delivery_id: str) -> Plain:
        """Give up on a failed delivery for good (admin scope); returns it."""
        request = actions_pb2.DiscardDeliveryRequest(delivery_id=delivery_id)
        return plain(self.actions.DiscardDelivery(request, **self.call_options()))

    @mapped
    def list_breakers(self) -> list[Plain]:
        """The circuit breakers, one per endpoint (admin scope)."""
        request = actions_pb2.ListBreakersRequest()
        response = self.actions.ListBreakers(request, **self.call_options())
        return [plain(b) for b in response.breakers]

    # --- dead letters (admin scope) --------------------------------------------------------
    @mapped
    def get_dead_letter(self, dlq_id: str) -> Plain:
        """A dead letter by id (admin scope)."""
        request = dlq_pb2.GetDeadLetterRequest(dlq_id=dlq_id)
        return plain(self.dead_letters.GetDeadLetter(request, **self.call_options()))

    @mapped
    def replay_dead_letters(
        self,
        dlq_ids: Sequence[str] = (),
        *,
        consumer: str = "",
        failed_since: datetime | None = None,
        failed_until: datetime | None = None,
        limit: int | None = None,
    ) -> Plain:
        """Send pending dead letters to their consumer again (admin scope): the ids given, or
        without ids the ones the filter selects (at most ``limit``, default 100).
        ``outcomes`` per id, ``replayed``, ``failed``."""
        request = build.replay_dead_letters(dlq_ids, consumer, failed_since, failed_until, limit)
        return plain(self.dead_letters.ReplayDeadLetters(request, **self.call_options()))

    @mapped
    def discard_dead_letters(self, dlq_ids: Sequence[str]) -> Plain:
        """Give up on pending dead letters (admin scope): ``outcomes`` per id, ``discarded``."""
        request = dlq_pb2.DiscardDeadLettersRequest(dlq_ids=list(dlq_ids))
        return plain(self.dead_letters.DiscardDeadLetters(request, **self.call_options()))

    # --- the console overview's figures (read scope) ----------------------------------------
    @mapped
    def get_stats(self) -> Plain:
        """Ingest rate, outbox depth, consumer lag, dead letters pending, failed deliveries
        (read scope); ``unavailable`` names the figures that could not be measured."""
        request = stats_pb2.GetStatsRequest()
        return plain(self.stats.GetStats(request, **self.call_options()))

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
