"""gRPC adapter for InferenceService (synchronous: it shares the health server's threads)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import grpc
from cornjacket.v1 import inference_pb2, inference_pb2_grpc
from google.protobuf import timestamp_pb2

from services.core.errors import InvalidInput, NotFound
from services.inference.reader import InferenceReader, check_device, token_of, window
from services.infra.audit import SyncAuditLog, caller_of
from services.infra.grpc_errors import grpc_errors_sync

_SERVICE = "/cornjacket.v1.InferenceService/"


def _time(msg: Any, field: str) -> datetime | None:
    if not msg.HasField(field):
        return None
    ts: timestamp_pb2.Timestamp = getattr(msg, field)
    try:
        return ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidInput(f"{field} is outside the representable range") from None


def _anomaly(row: dict[str, Any]) -> inference_pb2.Anomaly:
    p = row["payload"]
    expected = p.get("expected") or {}
    msg = inference_pb2.Anomaly(
        source_event_id=row["source_event_id"],
        anomaly_event_id=row["anomaly_event_id"] or "",
        device=row["device"],
        metric=row["metric"],
        value=float(p.get("value", 0.0)),
        score=float(p.get("score", 0.0)),
        threshold=float(p.get("threshold", 0.0)),
        expected_low=float(expected.get("low", 0.0)),
        expected_high=float(expected.get("high", 0.0)),
        model=str(p.get("model", "")),
        model_version=int(p.get("model_version", 0)),
    )
    msg.event_time.FromDatetime(row["event_time"])
    return msg


class InferenceServicer(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(
        self, reader: InferenceReader, audit: SyncAuditLog, *, warmup: int, threshold: float
    ) -> None:
        self._reader = reader
        self._audit = audit
        self._warmup = warmup
        self._threshold = threshold

    @grpc_errors_sync
    def ListScores(
        self, request: inference_pb2.ListScoresRequest, context: grpc.ServicerContext
    ) -> inference_pb2.ListScoresResponse:
        check_device(request.device)
        w = window(
            _time(request, "from"), _time(request, "to"), request.page_size, request.page_token
        )
        rows = self._reader.scores(request.device, request.metric, w)
        out = inference_pb2.ListScoresResponse()
        for r in rows[: w.limit]:
            s = out.scores.add(
                event_id=r["event_id"],
                device=r["device"],
                metric=r["metric"],
                value=r["value"],
                score=r["score"],
                expected_low=r["low"],
                expected_high=r["high"],
                learned=r["learned"],
                anomaly=r["anomaly"],
            )
            s.event_time.FromDatetime(r["event_time"])
        if len(rows) > w.limit:
            out.next_page_token = token_of(rows[w.limit - 1], "event_id")
        return out

    @grpc_errors_sync
    def ListAnomalies(
        self, request: inference_pb2.ListAnomaliesRequest, context: grpc.ServicerContext
    ) -> inference_pb2.ListAnomaliesResponse:
        if request.device:
            check_device(request.device)
        w = window(
            _time(request, "from"), _time(request, "to"), request.page_size, request.page_token
        )
        rows = self._reader.anomalies(request.device, w)
        out = inference_pb2.ListAnomaliesResponse(anomalies=[_anomaly(r) for r in rows[: w.limit]])
        if len(rows) > w.limit:
            out.next_page_token = token_of(rows[w.limit - 1], "source_event_id")
        return out

    @grpc_errors_sync
    def GetModelStatus(
        self, request: inference_pb2.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> inference_pb2.ModelStatus:
        check_device(request.device)
        rows = self._reader.models(request.device)
        if not rows:
            raise NotFound(f"no model for device {request.device!r}")
        out = inference_pb2.ModelStatus(device=request.device, warmup=self._warmup)
        for r in rows:
            m = out.models.add(
                metric=r["metric"],
                model=r["model"],
                observations=r["observations"],
                warmed_up=r["observations"] >= self._warmup,
                threshold=self._threshold,
                last_score=r["last_score"] or 0.0,
                late=r["late"],
            )
            if r["last_event_time"] is not None:
                m.last_event_time.FromDatetime(r["last_event_time"])
        return out

    @grpc_errors_sync
    def ResetModel(
        self, request: inference_pb2.ResetModelRequest, context: grpc.ServicerContext
    ) -> inference_pb2.ResetModelResponse:
        check_device(request.device)
        who = caller_of(context.invocation_metadata())
        with self._audit.record(who, _SERVICE + "ResetModel", request.device) as audit:
            audit.change = {"device": request.device, "metric": request.metric}
            n = self._reader.reset(request.device, request.metric)
            audit.change["reset"] = n
        return inference_pb2.ResetModelResponse(reset=n)

    @grpc_errors_sync
    def GetEventAnomalies(
        self, request: inference_pb2.GetEventAnomaliesRequest, context: grpc.ServicerContext
    ) -> inference_pb2.EventAnomalies:
        try:
            uuid.UUID(request.event_id)
        except ValueError:
            raise InvalidInput(f"event_id {request.event_id[:80]!r} is not a UUID") from None
        rows = self._reader.caused_by(request.event_id)
        return inference_pb2.EventAnomalies(anomalies=[_anomaly(r) for r in rows])
