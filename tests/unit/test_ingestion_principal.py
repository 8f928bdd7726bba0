"""Whose idempotency keys a call's events use: edge token subjects and MQTT devices never
share a principal (a token whose sub is "mqtt:dev-42" cannot pre-empt dev-42's keys)."""

from __future__ import annotations

from typing import Any

import pytest

from services.ingestion.grpc_api import CallContext


class Ctx:
    def __init__(self, *md: tuple[str, str]) -> None:
        self._md = md

    def invocation_metadata(self) -> Any:
        return self._md


@pytest.mark.parametrize(
    ("metadata", "principal", "subject"),
    [
        # Through Envoy: x-cj-source is always "http" or "grpc" (Envoy overwrites a client's).
        ((("x-cj-source", "http"), ("x-cj-subject", "alice")), "jwt:alice", "alice"),
        (
            (("x-cj-source", "grpc"), ("x-cj-subject", "mqtt:dev-42")),
            "jwt:mqtt:dev-42",
            "mqtt:dev-42",
        ),
        (
            (("x-cj-source", "grpc"), ("x-cj-subject", "mqtt-anonymous")),
            "jwt:mqtt-anonymous",
            "mqtt-anonymous",
        ),
        # No source header (a direct call) is a gRPC call, not the gateway.
        ((("x-cj-subject", "mqtt:dev-42"),), "jwt:mqtt:dev-42", "mqtt:dev-42"),
        # The MQTT gateway (inside the mesh, never through Envoy).
        ((("x-cj-source", "mqtt"), ("x-cj-subject", "mqtt:dev-42")), "mqtt:dev-42", "mqtt:dev-42"),
        (
            (("x-cj-source", "mqtt"), ("x-cj-subject", "mqtt-anonymous")),
            "mqtt-anonymous",
            "mqtt-anonymous",
        ),
        # No subject (auth off): the shared empty principal, as before.
        ((("x-cj-source", "http"),), "", ""),
    ],
)
def test_edge_and_gateway_principals_are_disjoint(
    metadata: tuple[tuple[str, str], ...], principal: str, subject: str
) -> None:
    call = CallContext.of(Ctx(*metadata))
    assert (call.principal, call.subject) == (principal, subject)
