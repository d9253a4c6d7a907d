"""RELAYFLOW_LOG_FORMAT=json: each line one JSON object, with the run, workflow, workspace
and trace it belongs to where they are known (the served process's lines, access lines
included: tests/web/test_probes_served.py)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from relayflow.telemetry import logs, tracing


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("relayflow.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield sink
    finally:
        logger.removeHandler(handler)


def read(sink: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in sink.getvalue().splitlines()]


def test_a_line_carries_its_extra_and_what_was_bound(lines: io.StringIO) -> None:
    log = logging.getLogger("relayflow.test")
    log.info("plain %s", "line")
    log.warning("from extra", extra={"run_id": "r-1", "workflow_id": "w-9"})
    with logs.bound(run_id="r-2", workflow="onboarding", workspace="ws-1"):
        log.info("bound")
        with logs.bound(run_id="r-3"):
            log.info("nested")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    plain, extra, bound, nested, failed = read(lines)
    assert plain["message"] == "plain line"
    assert plain["level"] == "INFO"
    assert plain["logger"] == "relayflow.test"
    assert "run_id" not in plain
    assert "trace_id" not in plain
    assert str(plain["time"]).endswith("+00:00")
    assert (extra["run_id"], extra["workflow"]) == ("r-1", "w-9")
    assert (bound["run_id"], bound["workflow"], bound["workspace"]) == (
        "r-2", "onboarding", "ws-1")
    assert (nested["run_id"], nested["workflow"]) == ("r-3", "onboarding")
    assert "ValueError: boom" in str(failed["exception"])


def test_a_line_inside_a_span_carries_its_trace(lines: io.StringIO) -> None:
    tracing.configure(exporter=InMemorySpanExporter())
    try:
        with tracing.current("work") as span:
            logging.getLogger("relayflow.test").info("traced")
        expected = format(span.get_span_context().trace_id, "032x")
    finally:
        tracing.disable()
    assert read(lines)[0]["trace_id"] == expected


def test_configure_switches_the_root_logger(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        assert logs.configure("json", "INFO") is True
        logging.getLogger("relayflow.x").info("one")
        assert logs.configure("text", "INFO") is False
        logging.getLogger("relayflow.x").info("two")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
    first, second = capsys.readouterr().err.splitlines()[-2:]
    assert json.loads(first)["message"] == "one"
    assert second.endswith("INFO relayflow.x: two")
