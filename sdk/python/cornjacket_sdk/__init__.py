"""Cornjacket Python SDK: sync and asyncio gRPC clients for every service, an envelope
helper, and the webhook signature verifier (cornjacket_sdk.webhooks, standard library only).

    from cornjacket_sdk import Client, event

    with Client("127.0.0.1:8080") as cj:
        accepted = cj.ingest(event("sensor.reading", "device-42", {"value": 21.5, "unit": "C"}))
        print(cj.get_projection("sensor_state", "device-42").state)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "Aborted",
    "AsyncClient",
    "Client",
    "CornjacketError",
    "Event",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "Projection",
    "RateLimited",
    "Unauthenticated",
    "Unavailable",
    "event",
]
_ERRORS = {
    "Aborted",
    "AlreadyExists",
    "Cancelled",
    "CornjacketError",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
}
_MODELS = {"Accepted", "BatchResult", "Event", "Lineage", "Projection", "ProjectionPage"}

if TYPE_CHECKING:
    from cornjacket_sdk.aio import AsyncClient
    from cornjacket_sdk.client import Client
    from cornjacket_sdk.envelopes import event
    from cornjacket_sdk.errors import (
        Aborted,
        CornjacketError,
        FailedPrecondition,
        InvalidArgument,
        NotFound,
        PermissionDenied,
        RateLimited,
        Unauthenticated,
        Unavailable,
    )
    from cornjacket_sdk.models import Event, Projection


def __getattr__(name: str) -> Any:
    # Lazy: receivers that only verify webhooks need neither grpcio nor protobuf.
    if name == "Client":
        from cornjacket_sdk.client import Client

        return Client
    if name == "AsyncClient":
        from cornjacket_sdk.aio import AsyncClient

        return AsyncClient
    if name == "event":
        from cornjacket_sdk.envelopes import event

        return event
    if name in _ERRORS:
        from cornjacket_sdk import errors

        return getattr(errors, name)
    if name in _MODELS:
        from cornjacket_sdk import models

        return getattr(models, name)
    raise AttributeError(name)
