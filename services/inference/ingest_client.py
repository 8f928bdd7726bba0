"""gRPC adapter for the AnomalySink port: ai.anomaly events go to IngestionService."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import grpc
from cornjacket.v1 import ingestion_pb2, ingestion_pb2_grpc

from services.core.errors import Unavailable
from services.inference.service import ANOMALY_TYPE, Anomaly, Rejected
from services.infra.codec import to_value

log = logging.getLogger(__name__)

# The service calls ingestion inside the stack (not through Envoy), like the MQTT gateway.
# Source "ai" is the only one ingestion takes ai.* events from (Envoy overwrites a client's
# x-cj-source); its idempotency keys live in the principal "ai:inference", which no edge
# token's (jwt:<sub>) or device's (mqtt:<user>) can be.
SUBJECT = "ai:inference"
_METADATA = (("x-cj-source", "ai"), ("x-cj-subject", SUBJECT))


class GrpcAnomalySink:
    def __init__(self, address: str, timeout: float) -> None:
        self._address = address
        self._timeout = timeout
        self._channel = grpc.insecure_channel(address)
        self._stub = ingestion_pb2_grpc.IngestionServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def send(self, anomalies: Sequence[Anomaly]) -> list[str | Rejected]:
        request = ingestion_pb2.IngestEventsRequest()
        for a in anomalies:
            req = ingestion_pb2.IngestEventRequest(
                event_type=ANOMALY_TYPE,
                aggregate_id=a.device,
                payload=to_value(a.payload),
                trace_id=a.trace_id,
                idempotency_key=a.idempotency_key,
            )
            req.event_time.FromDatetime(a.event_time)
            request.events.append(req)
        try:
            response = self._stub.IngestEvents(request, timeout=self._timeout, metadata=_METADATA)
        except grpc.RpcError as e:
            code = e.code() if isinstance(e, grpc.Call) else None
            raise Unavailable(f"ingestion at {self._address} did not take anomalies: {code}") from e
        ids: list[str | Rejected] = [""] * len(anomalies)
        for r in response.results:
            if r.status == "rejected":
                # Not an outage: the same event would be refused again. Kept as rejected
                # (inference.anomalies.rejected_at), logged, counted, not retried.
                log.error(
                    "ingestion rejected an anomaly",
                    extra={"source_event_id": anomalies[r.index].source_event_id, "error": r.error},
                )
                ids[r.index] = Rejected(r.error or "rejected")
            else:
                ids[r.index] = r.event_id
        return ids
