"""The bus's AsyncAPI document (gen/asyncapi/asyncapi.json, issue 19): valid AsyncAPI 3.0 by
the official JSON Schema, naming every topic the code produces to and consumes from, and
what scripts/asyncapi.py generates from the current protos and settings."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from google.protobuf import descriptor_pb2

from services.core.events import ALL_TOPICS, topic_for

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "gen" / "asyncapi" / "asyncapi.json"
SCHEMA = ROOT / "third_party" / "asyncapi" / "3.0.0.json"
sys.path.insert(0, str(ROOT / "scripts"))
import asyncapi  # noqa: E402  (scripts/ is not a package)


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DOC.read_text())
    return loaded


def test_the_document_is_valid_asyncapi_3(doc: dict[str, Any]) -> None:
    validator = jsonschema_rs.validator_for(json.loads(SCHEMA.read_text()))
    errors = [f"{e.instance_path}: {e.message[:200]}" for e in validator.iter_errors(doc)]
    assert errors == []
    assert doc["asyncapi"] == "3.0.0"
    # the schema does catch a broken document
    broken = {**doc, "channels": {"x": {"address": 5}}}
    assert not validator.is_valid(broken)


def test_every_topic_the_code_produces_to_or_reads_is_a_channel(doc: dict[str, Any]) -> None:
    addresses = {c["address"] for c in doc["channels"].values()}
    produced = set(ALL_TOPICS) | {topic_for(f"{p}.x") for p in ("sensor", "user", "ai", "any")}
    assert produced <= addresses
    consumed = {t for topics in asyncapi.consumers().values() for t in topics}
    assert consumed <= addresses
    assert addresses == produced  # and nothing the code does not produce
    sends = {op["channel"]["$ref"] for op in doc["operations"].values() if op["action"] == "send"}
    assert sends == {f"#/channels/{cid}" for cid in doc["channels"]}


def test_the_document_is_what_the_protos_and_settings_generate(doc: dict[str, Any]) -> None:
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString((ROOT / "gen" / "envoy" / "cornjacket.pb").read_bytes())
    assert asyncapi.document(fds) == doc, "gen/asyncapi is stale: run `make gen`"
    message = doc["components"]["messages"]["Event"]
    assert "message EventEnvelope" in message["payload"]["schema"]
    envelope = doc["components"]["schemas"]["EventEnvelope"]["properties"]
    assert {"event_id", "event_type", "aggregate_id", "payload"} <= set(envelope)
