"""Four worker processes share 1,000 runs of five steps: exactly 5,000 step executions.

Every run visits five nodes after its trigger; the workers claim in batches under leases
(SKIP LOCKED on PostgreSQL, BEGIN IMMEDIATE on SQLite). A step executed twice would leave
two rows for one (run, seq) or a sixth row; a lost one leaves a run unfinished. Fencing of
a worker whose lease expired is shown row by row in tests/worker/test_lease.py.
"""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

from relayflow.services import run as run_service
from relayflow.services import workflow as workflow_service
from relayflow.storage.db import session_scope
from relayflow.storage.models import Job, RunStep, WorkflowRun
from tests.support.flows import install, statuses
from tests.support.processes import start_worker, stop, wait_until

pytestmark = pytest.mark.slow
RUNS = 1000
NODES = ["trigger", "check", "pick", "left", "merge", "done"]
FLOW = {"key": "five", "trigger": {"type": "manual"}, "start": "check", "nodes": {
    "check": {"type": "CONDITION", "when": "event.n >= 0", "then": "pick", "else": "done"},
    "pick": {"type": "SPLIT", "branches": [{"weight": 1, "next": "left"}]},
    "left": {"type": "CONDITION", "when": "event.n % 2 == 0", "then": "merge",
             "else": "merge"},
    "merge": {"type": "CONDITION", "when": "true", "then": "done", "else": "done"},
    "done": {"type": "END"}}}


def test_four_workers_execute_every_step_exactly_once(settings, runtime, workspace):
    install(runtime, workspace.id, FLOW)
    with session_scope(runtime.sessions) as session:
        workflow = workflow_service.get(session, workspace_id=workspace.id, key="five")
        for n in range(RUNS):
            run_service.enroll(session, workflow=workflow, contact=None,
                               trigger_type="manual", event={"n": n}, now=runtime.clock())
    workers = [start_worker(settings, lease_seconds=5) for _ in range(4)]
    try:
        wait_until(lambda: statuses(runtime) == {"COMPLETED": RUNS}, timeout=240,
                   what=f"{RUNS} runs to complete")
        assert all(w.poll() is None for w in workers), "a worker died"
    finally:
        for worker in workers:
            stop(worker)
    with session_scope(runtime.sessions) as session:
        steps = session.execute(select(RunStep.run_id, RunStep.seq, RunStep.node_id)).all()
        runs = session.scalar(select(func.count()).select_from(WorkflowRun))
        jobs = session.scalar(select(func.count()).select_from(Job))
    executed = [s for s in steps if s.seq > 0]
    assert runs == RUNS
    assert jobs == 0
    assert len(executed) == RUNS * 5
    assert len({(s.run_id, s.seq) for s in steps}) == len(steps)  # no step twice
    per_run: dict = {}
    for run_id, seq, node in steps:
        per_run.setdefault(run_id, []).append((seq, node))
    assert Counter(tuple(n for _, n in sorted(v)) for v in per_run.values()) == {
        tuple(NODES): RUNS}
