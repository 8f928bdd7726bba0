"""Structured logs: one JSON object per line, with service, event_id and trace_id when known."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_event_id: contextvars.ContextVar[str] = contextvars.ContextVar("event_id", default="")
_trace_id: contextvars.ContextVar[str] = contextvars.ContextVar("trace_id", default="")

_STD_ATTRS = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def bind(*, event_id: str = "", trace_id: str = "") -> None:
    """Attach ids to every log line written from the current context (task or thread)."""
    if event_id:
        _event_id.set(event_id)
    if trace_id:
        _trace_id.set(trace_id)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if eid := _event_id.get():
            out["event_id"] = eid
        if tid := _trace_id.get():
            out["trace_id"] = tid
        for key, value in vars(record).items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__(f"%(asctime)s %(levelname)-7s {service} %(name)s: %(message)s")


def setup(service: str, *, level: str = "info", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else TextFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The pool warns on every failed reconnection attempt; services log outages themselves,
    # once per state change, so these would only flood the log during an outage.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
