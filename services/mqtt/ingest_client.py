"""gRPC adapter for the Ingestor port: the gateway calls IngestionService.IngestEvents."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import grpc
from cornjacket.v1 import ingestion_pb2, ingestion_pb2_grpc
from google.protobuf import struct_pb2

from services.core.errors import InvalidInput, Unavailable
from services.mqtt.ports import EventRequest, Outcome

log = logging.getLogger(__name__)

# Codes after which nothing is known to be committed, or a repeat is harmless thanks to
# the idempotency keys every request carries.
_RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
}
# The gateway calls ingestion directly (inside the stack, not through Envoy) and names
# the device's user as the subject (the principal its idempotency keys belong to).
_SOURCE = ("x-cj-source", "mqtt")


class GrpcIngestor:
    def __init__(self, address: str, timeout: float) -> None:
        self._address = address
        self._timeout = timeout
        self._channel = grpc.aio.insecure_channel(
            address, options=[("grpc.max_send_message_length", 32 * 1024 * 1024)]
        )
        self._stub = ingestion_pb2_grpc.IngestionServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def ingest(self, events: Sequence[EventRequest], principal: str) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(events)
        sent: list[int] = []
        request = ingestion_pb2.IngestEventsRequest()
        for i, e in enumerate(events):
            try:
                request.events.append(_request(e))
            except (ValueError, TypeError) as err:  # e.g. nesting deeper than Protobuf allows
                outcomes[i] = Outcome("rejected", error=f"payload cannot be encoded: {err}")
            else:
                sent.append(i)
        if not sent:
            return [o for o in outcomes if o is not None]
        try:
            response = await self._stub.IngestEvents(
                request, timeout=self._timeout, metadata=(_SOURCE, ("x-cj-subject", principal))
            )
        except grpc.aio.AioRpcError as e:
            # The message may reach the device (its errors topic): the code's name only;
            # where ingestion runs and what it said go to the log.
            log.warning(
                "ingestion call failed",
                extra={
                    "address": self._address,
                    "code": e.code().name,
                    "error": f"ingestion at {self._address}: {e.code().name}: {e.details()}",
                },
            )
            message = f"rejected by ingestion ({e.code().name})"
            if e.code() in _RETRYABLE:
                raise Unavailable(message) from e
            raise InvalidInput(message) from e
        for r in response.results:
            outcomes[sent[r.index]] = Outcome(r.status, r.event_id, r.error)
        missing = [i for i, o in enumerate(outcomes) if o is None]
        if missing:
            raise Unavailable(f"ingestion at {self._address} answered no result for {missing}")
        return [o for o in outcomes if o is not None]


def _request(e: EventRequest) -> ingestion_pb2.IngestEventRequest:
    payload = struct_pb2.Value()
    payload.struct_value.update(e.payload)
    req = ingestion_pb2.IngestEventRequest(
        event_type=e.event_type,
        aggregate_id=e.aggregate_id,
        payload=payload,
        trace_id=e.trace_id,
        idempotency_key=e.idempotency_key,
    )
    if e.event_time is not None:
        req.event_time.FromDatetime(e.event_time)
    return req
