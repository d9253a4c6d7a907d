"""Traces: OpenTelemetry spans for a webhook's intake, a run's walk, its steps and its
delivery attempts, exported with OTLP (HTTP) when OTEL_EXPORTER_OTLP_ENDPOINT is set.

Unset, nothing here does any work: every function returns at its first line (`_tracer` is
None), no span object is made, no header is sent and nothing is stored on a run.

The tree: a webhook request's span (a child of the caller's, when the request carries a
W3C `traceparent`) is the parent of the run it opened; the run keeps that parent
(`workflow_runs.traceparent`), so each walk of the run, in whatever worker and however
much later, is a `run` span under it. Steps are `step` spans under their walk's `run` span,
timed by the step's own start and end; a message's delivery attempt is a span under its
step. An INTEGRATION request carries its step span's `traceparent`, so the service it
calls continues the trace.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACES_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
SERVICE = "relayflow"

_tracer: Any = None  # an opentelemetry Tracer while tracing is on


def configure(exporter: Any = None) -> bool:
    """Turn tracing on when OTEL_EXPORTER_OTLP_ENDPOINT (or its _TRACES_ form) is set (or
    with `exporter`, the
    tests' in-memory one, whose spans are handed over as each ends); True when on. The
    standard OTEL_* variables (headers, service name, sampling) apply."""
    global _tracer
    if exporter is None and not (os.environ.get(ENDPOINT_ENV)
                                 or os.environ.get(TRACES_ENDPOINT_ENV)):
        return False
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get(
        "OTEL_SERVICE_NAME", SERVICE)}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    _tracer = provider.get_tracer("relayflow")
    trace.set_tracer_provider(provider)
    return True


def disable() -> None:
    """Tracing off again (the tests that turned it on)."""
    global _tracer
    _tracer = None


def enabled() -> bool:
    return _tracer is not None


def _parent(traceparent: str | None) -> Any:
    if not traceparent:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({"traceparent": traceparent})


@contextmanager
def current(name: str, *, traceparent: str | None = None,
            attributes: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """A span that is current inside (its children, and log lines' trace_id, follow it),
    under `traceparent` when one is given; None inside when tracing is off."""
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span(name, context=_parent(traceparent),
                                       attributes=dict(attributes or {})) as span:
        yield span


def start(name: str, *, parent: Any = None, traceparent: str | None = None,
          at: datetime | None = None, attributes: Mapping[str, Any] | None = None) -> Any:
    """A span begun now (or `at`), under the span `parent` or the `traceparent`; the
    caller ends it (`end`). None when tracing is off."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    context = trace.set_span_in_context(parent) if parent is not None else _parent(traceparent)
    return _tracer.start_span(name, context=context, attributes=dict(attributes or {}),
                              start_time=_ns(at))


def end(span: Any, *, at: datetime | None = None, failed: str | None = None,
        attributes: Mapping[str, Any] | None = None) -> None:
    """End `span` (None: nothing to end) now or `at`, marked as an error with `failed`."""
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    if attributes:
        span.set_attributes(dict(attributes))
    if failed is not None:
        span.set_status(Status(StatusCode.ERROR, failed[:200]))
    span.end(end_time=_ns(at))


def annotate(span: Any, attributes: Mapping[str, Any]) -> None:
    """Add `attributes` to `span` (None: tracing is off, nothing to do)."""
    if span is not None:
        span.set_attributes(dict(attributes))


def traceparent(span: Any) -> str | None:
    """The W3C `traceparent` of `span`: what a request made under it carries; None when
    tracing is off (no span)."""
    if span is None:
        return None
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent")


def _ns(at: datetime | None) -> int | None:
    return None if at is None else int(at.timestamp() * 1_000_000_000)
