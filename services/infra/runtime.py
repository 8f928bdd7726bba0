"""Process plumbing shared by every service: event loop, signals, gRPC server, health."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.core.errors import CornjacketError

log = logging.getLogger(__name__)


class PortInUse(CornjacketError):
    pass


class Health:
    """Wraps the standard gRPC health service; '' is the overall status Envoy checks."""

    def __init__(self, names: Iterable[str]) -> None:
        self.servicer = health.aio.HealthServicer()
        self._names = ["", *names]
        self._serving: bool | None = None

    async def set(self, serving: bool, reason: str = "") -> None:
        if serving == self._serving:
            return
        if self._serving is not None or not serving:
            log.log(
                logging.INFO if serving else logging.WARNING,
                "health changed",
                extra={"serving": serving, "reason": reason},
            )
        self._serving = serving
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in self._names:
            await self.servicer.set(name, status)


def make_server(host: str, port: int, health_: Health) -> grpc.aio.Server:
    from services.infra.metrics import GrpcMetrics

    server = grpc.aio.server(
        interceptors=[GrpcMetrics()],
        options=[
            ("grpc.so_reuseport", 0),  # a second process on our port is an error, not a peer
            ("grpc.max_receive_message_length", 8 * 1024 * 1024),
        ],
    )
    health_pb2_grpc.add_HealthServicer_to_server(health_.servicer, server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as e:
        raise PortInUse(f"cannot listen on {host}:{port}: {e}") from e
    if bound == 0:
        raise PortInUse(f"cannot listen on {host}:{port}: the port is in use")
    return server


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


def freeze_heap() -> None:
    """Take everything allocated at start-up (modules, settings, clients) out of the garbage
    collector's view. A full collection walked ~50,000 start-up objects, a ~25 ms pause in
    the middle of whatever requests were running; afterwards it walks only what requests
    allocated (ADR 0012)."""
    gc.collect()
    gc.freeze()


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> int:
    """Run a service's async main on uvloop; a CornjacketError exits 1 with its message."""
    import uvloop

    freeze_heap()

    try:
        uvloop.run(main())
    except CornjacketError as e:
        log.error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


async def watch(tasks: list[asyncio.Task[None]], stop: asyncio.Event) -> None:
    """Wait for stop; if a background task dies first, raise so the process exits non-zero."""
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    if stop.is_set():
        return
    for t in done:
        if t is not stopper:
            exc = t.exception()
            stopper.cancel()
            raise CornjacketError(
                f"background task {t.get_name()} ended unexpectedly: {exc!r}"
            ) from exc
