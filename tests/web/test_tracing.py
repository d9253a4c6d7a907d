"""Traces: a webhook carrying a W3C traceparent opens a run whose walk, steps and delivery
attempt are spans of the caller's trace, and the INTEGRATION request carries its step's
traceparent to the service it calls. Spans are read from the SDK's in-memory exporter; the
header from what a real HTTP server on 127.0.0.1 received."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from relayflow.services.runtime import Runtime
from relayflow.telemetry import tracing
from tests.conftest import WorkspaceHandle
from tests.support import httpserver
from tests.web.test_operations import hook_token

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure(exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.disable()


def test_a_webhook_run_is_one_trace_from_the_caller_to_the_crm(
        spans: InMemorySpanExporter, app: Any, runtime: Runtime,
        workspace: WorkspaceHandle) -> None:
    from tests.support.worker import drain

    target = httpserver.start()
    try:
        token = hook_token(runtime, workspace, target.url + "/crm")
        with TestClient(app) as client:
            answer = client.post(f"/hooks/{token}", json={"email": "ada@example.com"},
                                 headers={"traceparent": CALLER})
            assert answer.status_code == 202
            drain(runtime)
        sent = [r.headers for r in target.requests]
    finally:
        target.close()
    finished = spans.get_finished_spans()
    by_name: dict[str, list[Any]] = {}
    for span in finished:
        by_name.setdefault(span.name, []).append(span)
    assert {s.context.trace_id for s in finished} == {int(CALLER_TRACE, 16)}

    intake, = by_name["webhook intake"]
    assert format(intake.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert intake.attributes["relayflow.run_id"] == answer.json()["id"]
    run, = by_name["run"]
    assert run.parent.span_id == intake.context.span_id
    assert run.attributes["relayflow.workflow"] == "ops-hook"
    assert run.attributes["relayflow.status"] == "COMPLETED"
    steps = {s.attributes["relayflow.node"]: s for s in by_name["step"]}
    assert set(steps) == {"call", "mail", "done"}
    assert all(s.parent.span_id == run.context.span_id for s in steps.values())
    attempt, = by_name["delivery attempt"]
    assert attempt.parent.span_id == steps["mail"].context.span_id
    assert attempt.attributes["relayflow.status"] == "SENT"
    assert attempt.attributes["relayflow.channel"] == "email"

    # What reached the wire: the CRM call carries the call step's span as its parent.
    call = steps["call"].context
    assert len(sent) == 1
    assert sent[0]["traceparent"] == f"00-{CALLER_TRACE}-{call.span_id:016x}-01"


def test_without_tracing_no_span_is_made_and_no_header_is_sent(
        app: Any, runtime: Runtime, workspace: WorkspaceHandle) -> None:
    from tests.support.worker import drain

    assert not tracing.enabled()
    target = httpserver.start()
    try:
        token = hook_token(runtime, workspace, target.url + "/crm")
        with TestClient(app) as client:
            assert client.post(f"/hooks/{token}", json={"email": "ada@example.com"},
                               headers={"traceparent": CALLER}).status_code == 202
            drain(runtime)
        assert len(target.requests) == 1
        assert "traceparent" not in {name.lower() for name in target.requests[0].headers}
    finally:
        target.close()
