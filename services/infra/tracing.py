"""OpenTelemetry tracing: off by default; one trace follows an event from the HTTP/gRPC
call through the outbox row (trace and span id in the event's metadata), the bus
(``traceparent`` message header) to the event handler.

``CJ_TRACING_EXPORTER``: ``none`` (default), ``console``, ``file`` (JSON lines under
``CJ_TRACING_DIR``, one file per process: what the tests read), or ``otlp`` (needs the
opentelemetry-exporter-otlp-proto-http package; endpoint from the standard
``OTEL_EXPORTER_OTLP_*`` variables).
"""

from __future__ import annotations

import atexit
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from services.core.errors import ConfigError

EXPORTERS = ("none", "console", "file", "otlp")
_PROPAGATOR = TraceContextTextMapPropagator()
enabled = False


class JsonLinesExporter(SpanExporter):
    """One JSON object per finished span; flushed per batch so readers see them promptly."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            for s in spans:
                ctx = s.get_span_context()
                assert ctx is not None
                self._file.write(
                    json.dumps(
                        {
                            "name": s.name,
                            "kind": s.kind.name if s.kind else "",
                            "trace_id": f"{ctx.trace_id:032x}",
                            "span_id": f"{ctx.span_id:016x}",
                            "parent_span_id": f"{s.parent.span_id:016x}" if s.parent else "",
                            "service": s.resource.attributes.get("service.name", ""),
                            "start": s.start_time,
                            "end": s.end_time,
                            "attributes": dict(s.attributes or {}),
                        }
                    )
                    + "\n"
                )
            self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            self._file.close()


def setup(service: str, exporter: str, directory: Path | None) -> None:
    """Install the process's tracer provider (once, at start-up)."""
    global enabled
    if exporter == "none":
        return
    provider = TracerProvider(resource=Resource.create({"service.name": f"cornjacket-{service}"}))
    if exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    elif exporter == "file":
        if directory is None:
            raise ConfigError("CJ_TRACING_EXPORTER=file needs CJ_TRACING_DIR")
        path = directory / f"{service}-{os.getpid()}.jsonl"
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(path)))
    elif exporter == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter,
            )
        except ImportError:
            raise ConfigError(
                "CJ_TRACING_EXPORTER=otlp needs the opentelemetry-exporter-otlp-proto-http "
                "package installed"
            ) from None
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    atexit.register(provider.shutdown)
    enabled = True


def tracer() -> trace.Tracer:
    return trace.get_tracer("cornjacket")


def extract(carrier: Mapping[str, str]) -> Context:
    return _PROPAGATOR.extract(carrier)


def traceparent(span: Span) -> str:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, trace.set_span_in_context(span))
    return carrier.get("traceparent", "")


def ids(span: Span) -> tuple[str, str]:
    """(trace_id, span_id) as hex, or empty strings for a non-recording span."""
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return "", ""
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


def parent_of(trace_id: str, span_id: str) -> Context | None:
    """The context of a span recorded earlier (trace and span id kept with the event)."""
    try:
        ctx = SpanContext(
            trace_id=int(trace_id, 16),
            span_id=int(span_id, 16),
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
    except ValueError:
        return None
    if not ctx.is_valid:
        return None
    return trace.set_span_in_context(NonRecordingSpan(ctx))


@contextmanager
def span(name: str, kind: SpanKind, parent: Context | None, **attrs: str) -> Iterator[Span]:
    with tracer().start_as_current_span(name, context=parent, kind=kind, attributes=attrs) as s:
        yield s


def consumer_spans(messages: Sequence[tuple[Any, str]]) -> list[Span]:
    """A consumer span per bus message that carries a ``traceparent`` header, named as given;
    the caller ends them when the batch is done. ``messages``: (headers, span name)."""
    spans = []
    for headers, name in messages:
        carrier: dict[str, str] = {}
        for key, value in headers or ():
            if key == "traceparent" and value is not None:
                carrier[key] = value.decode() if isinstance(value, bytes) else str(value)
        if carrier:
            spans.append(
                tracer().start_span(name, context=extract(carrier), kind=SpanKind.CONSUMER)
            )
    return spans
