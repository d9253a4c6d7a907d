"""Bulk operations survive workers killed mid-operation, and act on each run once."""

from __future__ import annotations

import signal
from collections import Counter

import pytest
from sqlalchemy import select

from relayflow.services import bulk
from relayflow.storage.db import session_scope
from relayflow.storage.models import BulkItem, BulkOperation, WorkflowRun
from tests.support.flows import install, start, statuses
from tests.support.processes import start_worker, stop, wait_until
from tests.support.worker import drain

pytestmark = pytest.mark.slow
RUNS = 40


def _failed_runs(runtime, workspace) -> list:
    install(runtime, workspace.id, {"key": "stopper", "trigger": {"type": "manual"},
                                    "start": "first", "nodes": {"first": {
                                        "type": "STOP_ERROR", "message": "declined"}}})
    ids = start(runtime, workspace.id, "stopper", email="k@example.com", count=RUNS)
    drain(runtime)
    assert statuses(runtime) == {"FAILED": RUNS}
    return ids


def _operation(runtime, workspace, rate: float):
    with session_scope(runtime.sessions) as session:
        operation = bulk.create(session, workspace_id=workspace.id,
                                request=bulk.spec(action="retry",
                                                  filter={"status": "FAILED"}),
                                actor="olga@acme.test", now=runtime.clock(), rate=rate)
        return operation.id


def _state(runtime, operation_id) -> tuple[str, int]:
    with session_scope(runtime.sessions) as session:
        found = session.get(BulkOperation, operation_id)
        return found.status, found.done


def _assert_each_run_retried_once(runtime, operation_id, ids) -> None:
    with session_scope(runtime.sessions) as session:
        retried = Counter(session.scalars(select(WorkflowRun.retry_of).where(
            WorkflowRun.retry_of.is_not(None))))
        items = session.scalars(select(BulkItem).where(
            BulkItem.operation_id == operation_id)).all()
        found = session.get(BulkOperation, operation_id)
        counts = (found.status, found.total, found.done, found.skipped, found.failed)
    assert retried == Counter(dict.fromkeys(ids, 1))
    assert {i.state for i in items} == {"DONE"}
    assert {i.result_run_id for i in items} == set(_retry_ids(runtime))
    assert counts == ("COMPLETED", RUNS, RUNS, 0, 0)


def _retry_ids(runtime) -> list:
    with session_scope(runtime.sessions) as session:
        return list(session.scalars(select(WorkflowRun.id).where(
            WorkflowRun.retry_of.is_not(None))))


class TestBulkCrash:
    @pytest.mark.parametrize("point", ["bulk_acted:2", "bulk_committed:2"])
    def test_a_worker_killed_inside_or_after_a_batch(self, point, settings, runtime,
                                                     workspace):
        ids = _failed_runs(runtime, workspace)
        operation_id = _operation(runtime, workspace, rate=1000.0)
        doomed = start_worker(settings, fault=point)
        assert doomed.wait(30) == -signal.SIGKILL
        status, done = _state(runtime, operation_id)
        # Killed inside its second batch, the first batch alone was kept; after it, both.
        assert (status, done) == ("RUNNING", 10 if point.startswith("bulk_acted") else 20)
        rescuer = start_worker(settings)
        try:
            wait_until(lambda: _state(runtime, operation_id)[0] == "COMPLETED", timeout=60,
                       what=f"the operation to finish after a crash at {point}")
        finally:
            stop(rescuer)
        _assert_each_run_retried_once(runtime, operation_id, ids)

    def test_sigkill_from_outside_mid_operation(self, settings, runtime, workspace):
        ids = _failed_runs(runtime, workspace)
        operation_id = _operation(runtime, workspace, rate=20.0)  # about two seconds
        victim = start_worker(settings)
        wait_until(lambda: _state(runtime, operation_id)[1] >= 8, timeout=30,
                   what="the operation to start")
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
        status, done = _state(runtime, operation_id)
        assert status == "RUNNING"
        assert done < RUNS
        rescuer = start_worker(settings)
        try:
            wait_until(lambda: _state(runtime, operation_id)[0] == "COMPLETED", timeout=60,
                       what="the operation to finish after the kill")
        finally:
            stop(rescuer)
        _assert_each_run_retried_once(runtime, operation_id, ids)
