"""A batch's rows are converted for the database before its transaction (walk_writes.prepare)
and reach it exactly as SQLAlchemy's own execution would have written them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import select

from relayflow.services.runtime import Runtime
from relayflow.storage.db import read_scope, session_scope
from relayflow.storage.ids import new_id
from relayflow.storage.models import DeliveryAttempt, RunStep, WorkflowRun
from relayflow.storage.repositories import walk_writes
from tests.conftest import WorkspaceHandle
from tests.support import flows

PARIS = timezone(timedelta(hours=1))
WHEN = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=PARIS)
OUTPUT = {"text": "naïve café ☕ \"quoted\"", "nested": {"list": [1, 2.5, None, True]}}


def test_prepared_rows_read_back_as_written(runtime: Runtime,
                                            workspace: WorkspaceHandle) -> None:
    flows.install(runtime, workspace.id, {"key": "w", "trigger": {"type": "manual"},
                                          "start": "done", "nodes": {"done": {"type": "END"}}})
    first, second = flows.start(runtime, workspace.id, "w", count=2)
    step_id, other_step, attempt_id = new_id(), new_id(), new_id()
    step = {"id": step_id, "workspace_id": workspace.id, "run_id": first, "seq": 1,
            "node_id": "send", "node_type": "SEND_MESSAGE", "status": "RUNNING",
            "started_at": WHEN, "finished_at": None, "duration_ms": None, "branch": None,
            "output": OUTPUT, "request": None, "response": None,
            "delivery_attempt_id": attempt_id, "error": None}
    writes = walk_writes.BatchWrites(
        new_steps=[step, {**step, "id": other_step, "run_id": second, "output": {},
                          "delivery_attempt_id": None, "status": "COMPLETED"}],
        new_attempts=[{"id": attempt_id, "workspace_id": workspace.id, "run_id": first,
                       "step_seq": 1, "workflow_id": None, "contact_id": None,
                       "channel": "email", "provider": "smtp", "recipient": "a@example.com",
                       "subject": "Ça va", "body": "x" * 5000, "status": "QUEUED",
                       "attempt_number": 1, "created_at": WHEN}],
        # Two sets of columns: two statements for one table.
        step_updates=[{"id": step_id, "run_id": first, "status": "COMPLETED",
                       "finished_at": WHEN, "duration_ms": 7},
                      {"id": other_step, "run_id": second, "error": "boom ☠"}],
        attempt_updates=[{"id": attempt_id, "send_started_at": WHEN,
                          "provider_response": {"code": 250, "text": "ok"}}],
        run_updates=[{"id": first, "status": "RUNNING", "current_node": "send",
                      "started_at": WHEN}])
    prepared = walk_writes.prepare(runtime.dialect, writes)
    assert len(prepared.statements) == 6  # 2 inserts; steps twice, attempts, runs updated
    with session_scope(runtime.sessions) as session:
        walk_writes.apply(session, prepared, datetime.now(UTC))

    with read_scope(runtime.sessions) as session:
        got = session.get(RunStep, (first, 1))
        other = session.get(RunStep, (second, 1))
        attempt = session.get(DeliveryAttempt, attempt_id)
        run = session.scalar(select(WorkflowRun).where(WorkflowRun.id == first))
    assert got is not None
    assert other is not None
    assert attempt is not None
    assert run is not None
    assert (got.status, got.finished_at, got.duration_ms) == ("COMPLETED", WHEN, 7)
    assert (got.started_at, got.output) == (WHEN, OUTPUT)
    assert (got.id, other.id, got.delivery_attempt_id) == (step_id, other_step, attempt_id)
    assert (other.error, other.output, other.status) == ("boom ☠", {}, "COMPLETED")
    assert (attempt.subject, attempt.body, attempt.created_at) == ("Ça va", "x" * 5000, WHEN)
    assert attempt.provider_response == {"code": 250, "text": "ok"}
    assert (attempt.send_started_at, attempt.error) == (WHEN, None)
    assert attempt.suppression_override is False  # a default filled in
    assert (run.status, run.current_node, run.started_at) == ("RUNNING", "send", WHEN)


def test_each_statement_shape_is_compiled_once(runtime: Runtime,
                                               workspace: WorkspaceHandle) -> None:
    """Preparing is on every commit of the worker: the compiled statements are reused, and
    their cache does not grow with the number of commits."""
    def batch() -> walk_writes.BatchWrites:
        step = {"id": new_id(), "workspace_id": workspace.id, "run_id": new_id(), "seq": 1,
                "node_id": "n", "node_type": "END", "status": "COMPLETED", "started_at": WHEN,
                "finished_at": WHEN, "duration_ms": 0, "branch": None, "output": {},
                "request": None, "response": None, "delivery_attempt_id": None, "error": None}
        return walk_writes.BatchWrites(new_steps=[step],
                                       run_updates=[{"id": new_id(), "status": "COMPLETED"}])

    walk_writes.prepare(runtime.dialect, batch())
    compiled = walk_writes._compiled.cache_info().currsize
    for _ in range(5):
        walk_writes.prepare(runtime.dialect, batch())
    assert walk_writes._compiled.cache_info().currsize == compiled
