"""gRPC transport of the series reads: Protobuf in, plain values to SeriesService, out."""

from __future__ import annotations

from datetime import datetime

import grpc
from cornjacket.v1 import series_pb2, series_pb2_grpc

from services.core.errors import InvalidInput
from services.infra.codec import to_timestamp
from services.infra.grpc_errors import grpc_errors
from services.tsdb.series import (
    HOUR,
    MINUTE,
    SeriesQuery,
    parse_aggregates,
    parse_bucket,
    plan,
)
from services.tsdb.service import SeriesService, page_token


def parse_time(name: str, text: str) -> datetime:
    if not text:
        raise InvalidInput(f"{name} is required (an RFC 3339 time such as 2026-05-01T12:00:00Z)")
    try:
        t = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise InvalidInput(f"{name} {text[:64]!r} is not an RFC 3339 time") from None
    if t.tzinfo is None:
        raise InvalidInput(f"{name} {text[:64]!r} must carry a time zone (Z or +hh:mm)")
    return t


class SeriesServicer(series_pb2_grpc.SeriesServiceServicer):
    def __init__(self, service: SeriesService) -> None:
        self._service = service

    @grpc_errors
    async def GetSeries(
        self, request: series_pb2.GetSeriesRequest, context: grpc.aio.ServicerContext
    ) -> series_pb2.GetSeriesResponse:
        q = SeriesQuery(
            device=request.device,
            metric=request.metric,
            start=parse_time("start", request.start),
            end=parse_time("end", request.end),
            bucket=parse_bucket(request.bucket or "1m"),
            aggregates=parse_aggregates(request.aggregates),
        )
        buckets = await self._service.buckets(q)
        step = plan(q).rollup
        source = {HOUR: "rollup_1h", MINUTE: "rollup_1m"}.get(step, "raw") if step else "raw"
        out = series_pb2.GetSeriesResponse(
            device=q.device,
            metric=q.metric,
            bucket=request.bucket or "1m",
            source=source,
            origin=to_timestamp(buckets.origin),
            bucket_seconds=int(q.bucket.total_seconds()),
        )
        # Whole columns at once: per-bucket messages cost ~10 ms per 1,440 buckets (ADR 19);
        # only the aggregates asked for.
        want = q.aggregates
        out.index.extend(buckets.index)
        if "count" in want:
            out.count.extend(buckets.count)
        if "sum" in want:
            out.sum.extend(buckets.sum)
        if "min" in want:
            out.min.extend(buckets.min)
        if "max" in want:
            out.max.extend(buckets.max)
        if "avg" in want:
            out.avg.extend(buckets.avg)
        if "first" in want:
            out.first.extend(buckets.first)
        if "last" in want:
            out.last.extend(buckets.last)
        return out

    @grpc_errors
    async def GetLatest(
        self, request: series_pb2.GetLatestRequest, context: grpc.aio.ServicerContext
    ) -> series_pb2.GetLatestResponse:
        latest = await self._service.latest(request.device)
        return series_pb2.GetLatestResponse(
            device=request.device,
            values=[
                series_pb2.LatestValue(metric=v.metric, time=to_timestamp(v.time), value=v.value)
                for v in latest.values
            ],
            truncated=latest.truncated,
        )

    @grpc_errors
    async def ListSeries(
        self, request: series_pb2.ListSeriesRequest, context: grpc.aio.ServicerContext
    ) -> series_pb2.ListSeriesResponse:
        limit = request.limit or 100
        found = await self._service.series(request.device_prefix, request.page_token, limit)
        return series_pb2.ListSeriesResponse(
            series=[
                series_pb2.SeriesInfo(
                    device=s.device, metric=s.metric, last_time=to_timestamp(s.last_time)
                )
                for s in found
            ],
            next_page_token=page_token(found[-1]) if len(found) == limit else "",
        )
