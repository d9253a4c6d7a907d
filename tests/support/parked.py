"""Many runs parked at a WAIT, written in bulk through the real tables.

Walking 15,000 runs to their WAIT through the worker takes minutes; these rows are what the
worker would have committed for each (run RUNNING at the WAIT with its wake time, the
trigger step, the WAITING step, the job due at the wake time), written in a few statements.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert

from relayflow.services import run as run_service
from relayflow.services import workflow as workflow_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.ids import new_id
from relayflow.storage.models import Job, RunStep, WorkflowRun

CHUNK = 2_000  # rows per INSERT: well under SQLite's and PostgreSQL's parameter limits


def drip(key: str = "drip") -> dict[str, Any]:
    """A workflow whose runs park at a three-day WAIT."""
    return {"key": key, "name": "Drip", "trigger": {"type": "manual"}, "start": "pause",
            "nodes": {"pause": {"type": "WAIT", "duration": "3d", "next": "done"},
                      "done": {"type": "END"}}}


def park(runtime: Runtime, workspace_id: uuid.UUID, key: str, count: int,
         *, now: datetime) -> list[uuid.UUID]:
    """`count` runs of workflow `key` (a `drip`), each parked at its WAIT; returns their ids."""
    with session_scope(runtime.sessions) as session:
        workflow = workflow_service.get(session, workspace_id=workspace_id, key=key)
        workflow_id, version_id = workflow.id, workflow.current_version_id
    assert version_id is not None
    wake = now + timedelta(days=3)
    ids: list[uuid.UUID] = []
    for first in range(0, count, CHUNK):
        runs, steps, jobs = [], [], []
        for _ in range(min(CHUNK, count - first)):
            run, trigger_step, job = run_service.new_run_rows(
                workspace_id=workspace_id, workflow_id=workflow_id, version_id=version_id,
                contact_id=None, trigger_type="manual", event={}, now=now)
            run.update(status="RUNNING", started_at=now, current_node="pause", wake_at=wake)
            job.update(due_at=wake)
            steps += [trigger_step, {
                **trigger_step, "id": new_id(), "seq": 1, "node_id": "pause",
                "node_type": "WAIT", "status": "WAITING", "finished_at": None,
                "duration_ms": None, "output": {"until": wake.isoformat(), "next": "done"}}]
            runs.append(run)
            jobs.append(job)
            ids.append(run["id"])
        with session_scope(runtime.sessions) as session:
            session.execute(insert(WorkflowRun), runs)
            session.execute(insert(RunStep), steps)
            session.execute(insert(Job), jobs)
    return ids
