"""asyncio client: the same calls as ``Client``, awaited (grpc.aio)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import grpc
from cornjacket.v1 import (
    actions_pb2,
    dlq_pb2,
    ingestion_pb2,
    lineage_pb2,
    query_pb2,
    series_pb2,
    stats_pb2,
    watch_pb2,
)

from cornjacket_sdk import build
from cornjacket_sdk.build import audit_request, keyed, keyed_batch, series_request
from cornjacket_sdk.client import DEFAULT_TIMEOUT, Stubs, channel_options
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
        answer = await self.ingestion.IngestEvent(keyed(request), **self.call_options())
        return Accepted.from_proto(answer)

    @mapped_async
    async def ingest_many(
        self, requests: Sequence[ingestion_pb2.IngestEventRequest]
    ) -> BatchResult:
        return BatchResult.from_proto(
            await self.ingestion.IngestEvents(keyed_batch(requests), **self.call_options())
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
        self,
        device: str,
        metric: str,
        start: Any,
        end: Any,
        *,
        bucket: str = "1m",
        aggregates: Sequence[str] = (),
    ) -> Plain:
        """See Client.get_series."""
        response = await self.series.GetSeries(
            series_request(device, metric, start, end, bucket, aggregates), **self.call_options()
        )
        return plain(response)

    @mapped_async
    async def latest_values(self, device: str) -> Plain:
        response = await self.series.GetLatest(
            series_pb2.GetLatestRequest(device=device), **self.call_options()
        )
        return plain(response)

    @mapped_async
    async def list_dead_letters(
        self, *, status: str = "", consumer: str = "", limit: int = 20, offset: int = 0
    ) -> Plain:
        """Dead letters newest first (admin scope): see Client.list_dead_letters."""
        request = build.list_dead_letters(status, consumer, limit, offset)
        return plain(await self.dead_letters.ListDeadLetters(request, **self.call_options()))

    # --- rules, deliveries, breakers (admin scope) ----------------------------------------
    @mapped_async
    async def create_rule(
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
        return plain(await self.actions.CreateRule(request, **self.call_options()))

    @mapped_async
    async def get_rule(self, rule_id: str) -> Plain:
        """A rule by id (admin scope); NotFound when there is none."""
        request = actions_pb2.GetRuleRequest(rule_id=rule_id)
        return plain(await self.actions.GetRule(request, **self.call_options()))

    @mapped_async
    async def list_rules(self, *, limit: int | None = None, offset: int = 0) -> Plain:
        """A page of rules (admin scope): ``rules``, ``total``, ``limit`` (1..100, default
        20), ``offset``."""
        request = build.list_rules(limit, offset)
        return plain(await self.actions.ListRules(request, **self.call_options()))

    @mapped_async
    async def update_rule(
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
        return plain(await self.actions.UpdateRule(request, **self.call_options()))

    @mapped_async
    async def enable_rule(self, rule_id: str) -> Plain:
        """Enable a rule (admin scope); returns it."""
        request = actions_pb2.EnableRuleRequest(rule_id=rule_id)
        return plain(await self.actions.EnableRule(request, **self.call_options()))

    @mapped_async
    async def disable_rule(self, rule_id: str, *, reason: str = "") -> Plain:
        """Disable a rule (admin scope); ``reason`` is kept as its ``disabled_reason``."""
        request = actions_pb2.DisableRuleRequest(rule_id=rule_id, reason=reason)
        return plain(await self.actions.DisableRule(request, **self.call_options()))

    @mapped_async
    async def delete_rule(self, rule_id: str) -> None:
        """Delete a rule with its deliveries (admin scope); NotFound when there is none."""
        request = actions_pb2.DeleteRuleRequest(rule_id=rule_id)
        await self.actions.DeleteRule(request, **self.call_options())

    @mapped_async
    async def test_rule(
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
        return plain(await self.actions.TestRule(request, **self.call_options()))

    @mapped_async
    async def list_deliveries(
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
        return plain(await self.actions.ListDeliveries(request, **self.call_options()))

    @mapped_async
    async def get_delivery(self, delivery_id: str) -> Plain:
        """A delivery with its attempts (admin scope)."""
        request = actions_pb2.GetDeliveryRequest(delivery_id=delivery_id)
        return plain(await self.actions.GetDelivery(request, **self.call_options()))

    @mapped_async
    async def replay_deliveries(
        self, delivery_ids: Sequence[str] = (), *, all_failed: bool = False, rule_id: str = ""
    ) -> Plain:
        """Send failed (or discarded) deliveries again (admin scope): the ids given, or with
        ``all_failed=True`` every failed one (of ``rule_id``, if given)."""
        request = build.replay_deliveries(delivery_ids, all_failed, rule_id)
        return plain(await self.actions.ReplayDeliveries(request, **self.call_options()))

    @mapped_async
    async def discard_delivery(self, delivery_id: str) -> Plain:
        """Give up on a failed delivery for good (admin scope); returns it."""
        request = actions_pb2.DiscardDeliveryRequest(delivery_id=delivery_id)
        return plain(await self.actions.DiscardDelivery(request, **self.call_options()))

    @mapped_async
    async def list_breakers(self) -> list[Plain]:
        """The circuit breakers, one per endpoint (admin scope)."""
        request = actions_pb2.ListBreakersRequest()
        response = await self.actions.ListBreakers(request, **self.call_options())
        return [plain(b) for b in response.breakers]

    # --- dead letters (admin scope) --------------------------------------------------------
    @mapped_async
    async def get_dead_letter(self, dlq_id: str) -> Plain:
        """A dead letter by id (admin scope)."""
        request = dlq_pb2.GetDeadLetterRequest(dlq_id=dlq_id)
        return plain(await self.dead_letters.GetDeadLetter(request, **self.call_options()))

    @mapped_async
    async def replay_dead_letters(
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
        return plain(await self.dead_letters.ReplayDeadLetters(request, **self.call_options()))

    @mapped_async
    async def discard_dead_letters(self, dlq_ids: Sequence[str]) -> Plain:
        """Give up on pending dead letters (admin scope): ``outcomes`` per id, ``discarded``."""
        request = dlq_pb2.DiscardDeadLettersRequest(dlq_ids=list(dlq_ids))
        return plain(await self.dead_letters.DiscardDeadLetters(request, **self.call_options()))

    # --- the console overview's figures (read scope) ----------------------------------------
    @mapped_async
    async def get_stats(self) -> Plain:
        """Ingest rate, outbox depth, consumer lag, dead letters pending, failed deliveries
        (read scope); ``unavailable`` names the figures that could not be measured."""
        request = stats_pb2.GetStatsRequest()
        return plain(await self.stats.GetStats(request, **self.call_options()))

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
