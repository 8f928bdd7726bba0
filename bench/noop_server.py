"""A no-op IngestionService (asyncio + uvloop): the ceiling the real service is compared with.

It answers every call with a fixed response and no I/O, so Envoy->noop and client->noop
throughput bound what any gRPC service of ours could reach on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import grpc
import uvloop
from cornjacket.v1 import ingestion_pb2, ingestion_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

_FIXED_ID = "01a21c3d-a9b4-70de-94e0-909f717c8446"


class NoopIngestion(ingestion_pb2_grpc.IngestionServiceServicer):
    async def IngestEvent(
        self, request: ingestion_pb2.IngestEventRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.IngestEventResponse:
        return ingestion_pb2.IngestEventResponse(event_id=_FIXED_ID, status="accepted")

    async def IngestEvents(
        self, request: ingestion_pb2.IngestEventsRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.IngestEventsResponse:
        out = ingestion_pb2.IngestEventsResponse(accepted=len(request.events))
        for i in range(len(request.events)):
            out.results.add(index=i, event_id=_FIXED_ID, status="accepted")
        return out


async def serve(port: int) -> None:
    server = grpc.aio.server()
    ingestion_pb2_grpc.add_IngestionServiceServicer_to_server(NoopIngestion(), server)
    checker = health.aio.HealthServicer()
    await checker.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise SystemExit(f"cannot listen on 127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    uvloop.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
