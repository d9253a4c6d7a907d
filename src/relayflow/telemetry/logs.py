"""Log lines: plain text for a terminal, or one JSON object per line
(RELAYFLOW_LOG_FORMAT=json) for a log pipeline.

A JSON line holds `time` (UTC, ISO 8601), `level`, `logger` and `message`, and, where they are
known, `run_id`, `workflow`, `workspace` and `trace_id`: from the record's `extra`, else from
what the code doing the work bound for its thread (`bound`), else (trace_id) from the current
span. An access line adds `client`, `method`, `path` (its token masked, as in text) and
`status`; an error adds `exception` (its traceback).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FIELDS = ("run_id", "workflow", "workspace")
_bound: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "relayflow_log_fields", default=None)


@contextmanager
def bound(**fields: str) -> Iterator[None]:
    """Log lines written inside carry these fields (run_id, workflow, workspace)."""
    token = _bound.set({**(_bound.get() or {}), **fields})
    try:
        yield
    finally:
        _bound.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = _bound.get() or {}
        for name in FIELDS:
            value = getattr(record, name, None) or fields.get(name)
            if name == "workflow" and value is None:
                value = getattr(record, "workflow_id", None)
            if value is not None:
                line[name] = str(value)
        trace_id = _trace_id()
        if trace_id:
            line["trace_id"] = trace_id
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) \
                and len(record.args) == 5:
            client, method, path, _version, status = record.args
            line.update(client=client, method=method, path=path, status=status)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def _trace_id() -> str | None:
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def configure(log_format: str | None = None, level: str | None = None) -> bool:
    """Set up the root logger for `log_format` (`json`, or text); True when JSON. Called by
    every command that runs for long (serve, worker), before anything logs."""
    level = level or os.environ.get("RELAYFLOW_LOG_LEVEL", "INFO")
    as_json = (log_format or os.environ.get("RELAYFLOW_LOG_FORMAT", "text")).lower() == "json"
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if as_json else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return as_json
