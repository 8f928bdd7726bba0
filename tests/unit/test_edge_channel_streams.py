"""edge_channel sends its bearer token on streaming calls too (the benchmark's live-tail
watcher got UNAUTHENTICATED "Jwt is missing": only unary calls carried it)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc

from services.cli.auth import edge_channel


def _auth(context: Any) -> bytes:
    return str(dict(context.invocation_metadata()).get("authorization", "")).encode()


def _server() -> tuple[grpc.Server, int]:
    def unary(request: bytes, context: Any) -> bytes:
        return _auth(context)

    def stream(request: bytes, context: Any) -> Iterator[bytes]:
        yield _auth(context)

    handler = grpc.method_handlers_generic_handler(
        "t.Echo",
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Stream": grpc.unary_stream_rpc_method_handler(stream),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def test_the_token_goes_with_unary_and_server_streaming_calls() -> None:
    server, port = _server()
    try:
        with edge_channel(f"127.0.0.1:{port}", "tok") as channel:
            unary = channel.unary_unary("/t.Echo/Unary")
            stream = channel.unary_stream("/t.Echo/Stream")
            assert unary(b"", timeout=10) == b"Bearer tok"
            assert list(stream(b"", timeout=10)) == [b"Bearer tok"]
    finally:
        server.stop(None)
