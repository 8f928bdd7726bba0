from __future__ import annotations

import json
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.infra import tracing


def test_parent_kept_with_an_event_continues_the_trace_across_a_header(tmp_path: Path) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(
        SimpleSpanProcessor(tracing.JsonLinesExporter(tmp_path / "s.jsonl"))
    )
    tracer = provider.get_tracer("test")

    with tracer.start_as_current_span("IngestEvent", kind=SpanKind.SERVER) as accepted:
        trace_id, span_id = tracing.ids(accepted)  # what the outbox row keeps
    publish = tracer.start_span(
        "publish", context=tracing.parent_of(trace_id, span_id), kind=SpanKind.PRODUCER
    )
    header = tracing.traceparent(publish)
    publish.end()
    consumed = tracer.start_span("project", context=tracing.extract({"traceparent": header}))
    consumed.end()

    spans = {s.name: s for s in memory.get_finished_spans()}
    assert {f"{s.context.trace_id:032x}" for s in spans.values()} == {trace_id}
    assert (
        spans["publish"].parent is not None and f"{spans['publish'].parent.span_id:016x}" == span_id
    )
    assert spans["project"].parent is not None
    assert spans["project"].parent.span_id == spans["publish"].context.span_id
    lines = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [x["name"] for x in lines] == ["IngestEvent", "publish", "project"]
    assert lines[1]["parent_span_id"] == span_id


def test_bad_ids_give_no_parent() -> None:
    assert tracing.parent_of("zz", "12") is None
    assert tracing.parent_of("0" * 32, "0" * 16) is None
