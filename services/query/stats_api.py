"""Adapters of the overview's figures (issue 19): gRPC clients of the owners inside the
mesh, the bus's consumer-group lag (services/infra/kafka_lag.py), and the public
StatsService servicer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import grpc
from cornjacket.v1 import (
    actions_pb2,
    actions_pb2_grpc,
    dlq_pb2,
    dlq_pb2_grpc,
    stats_pb2,
    stats_pb2_grpc,
)

from services.config.settings import KafkaSecurity
from services.core.errors import Unavailable
from services.infra.codec import to_timestamp
from services.infra.grpc_errors import grpc_errors
from services.infra.kafka_lag import GroupLag
from services.query.stats import GroupLagView, IngestFigures, Stats, StatsService

TIMEOUT = 3.0


class _Client:
    def __init__(self, owner: str, address: str) -> None:
        self._owner = owner
        self._address = address
        self._channel = grpc.aio.insecure_channel(address)

    async def close(self) -> None:
        await self._channel.close()

    def _unavailable(self, e: grpc.aio.AioRpcError) -> Unavailable:
        return Unavailable(f"{self._owner} at {self._address}: {e.code().name}: {e.details()}")


class GrpcIngestStats(_Client):
    def __init__(self, address: str) -> None:
        super().__init__("ingestion", address)
        self._stub = stats_pb2_grpc.IngestStatsServiceStub(self._channel)

    async def figures(self) -> IngestFigures:
        try:
            r = await self._stub.GetIngestStats(stats_pb2.GetIngestStatsRequest(), timeout=TIMEOUT)
        except grpc.aio.AioRpcError as e:
            raise self._unavailable(e) from e
        return IngestFigures(
            accepted_last_minute=r.accepted_last_minute,
            accepted_capped=r.accepted_last_minute_capped,
            outbox_depth=r.outbox_depth,
            outbox_capped=r.outbox_depth_capped,
            outbox_oldest_age=r.outbox_oldest_age_seconds,
        )


class GrpcPendingDeadLetters(_Client):
    def __init__(self, address: str) -> None:
        super().__init__("eventhandler", address)
        self._stub = dlq_pb2_grpc.DeadLetterServiceStub(self._channel)

    async def count(self) -> int:
        try:
            r = await self._stub.ListDeadLetters(
                dlq_pb2.ListDeadLettersRequest(
                    filter=dlq_pb2.DeadLetterFilter(status="pending"), limit=1
                ),
                timeout=TIMEOUT,
            )
        except grpc.aio.AioRpcError as e:
            raise self._unavailable(e) from e
        return int(r.total)


class GrpcFailedDeliveries(_Client):
    def __init__(self, address: str) -> None:
        super().__init__("actions", address)
        self._stub = actions_pb2_grpc.ActionServiceStub(self._channel)

    async def count(self) -> int:
        try:
            r = await self._stub.ListDeliveries(
                actions_pb2.ListDeliveriesRequest(status="failed", limit=1), timeout=TIMEOUT
            )
        except grpc.aio.AioRpcError as e:
            raise self._unavailable(e) from e
        return int(r.total)


class BusLag:
    """Each group's lag from outside the group (GroupLag: never joins, never commits).

    GroupLag is blocking and not thread-safe: one probe runs at a time, in a worker thread;
    a caller arriving while one runs (even one its caller gave up on) awaits that one."""

    def __init__(
        self, brokers: str, security: KafkaSecurity, groups: Sequence[tuple[str, Sequence[str]]]
    ) -> None:
        self._probes = [
            (group, GroupLag(brokers, group, topics, security=security)) for group, topics in groups
        ]
        self._running: asyncio.Future[list[GroupLagView]] | None = None

    def _probe(self) -> list[GroupLagView]:
        return [GroupLagView(group, probe.lag()) for group, probe in self._probes]

    async def lags(self) -> list[GroupLagView]:
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(asyncio.to_thread(self._probe))
        return await asyncio.shield(self._running)

    async def close(self) -> None:
        if self._running is not None and not self._running.done():
            await asyncio.wait([self._running], timeout=10)
        for _, probe in self._probes:
            await asyncio.to_thread(probe.close)


def stats_to_proto(s: Stats) -> stats_pb2.Stats:
    return stats_pb2.Stats(
        measured_at=to_timestamp(s.measured_at),
        ingest_rate_per_second=s.ingest_rate,
        accepted_last_minute=s.ingest.accepted_last_minute,
        accepted_last_minute_capped=s.ingest.accepted_capped,
        outbox_depth=s.ingest.outbox_depth,
        outbox_depth_capped=s.ingest.outbox_capped,
        outbox_oldest_age_seconds=s.ingest.outbox_oldest_age,
        consumer_lag=[
            stats_pb2.ConsumerLag(group=g.group, lag=g.lag or 0, known=g.lag is not None)
            for g in s.consumer_lag
        ],
        dead_letters_pending=s.dead_letters_pending,
        deliveries_failed=s.deliveries_failed,
        unavailable=s.unavailable,
    )


class StatsServicer(stats_pb2_grpc.StatsServiceServicer):
    def __init__(self, service: StatsService) -> None:
        self._service = service

    @grpc_errors
    async def GetStats(
        self, request: stats_pb2.GetStatsRequest, context: grpc.aio.ServicerContext
    ) -> stats_pb2.Stats:
        return stats_to_proto(await self._service.stats())
