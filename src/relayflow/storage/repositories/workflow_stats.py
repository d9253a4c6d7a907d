"""Read-only run counts per workflow, for the workflow pages."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from relayflow.engine.status import IN_FLIGHT
from relayflow.storage.models import WorkflowRun


def status_counts_since(
    session: Session, workspace_id: uuid.UUID, *, since: datetime,
    workflow_id: uuid.UUID | None = None,
) -> dict[uuid.UUID, dict[str, int]]:
    """`{workflow_id: {status: runs}}` for runs created at or after `since`, in one grouped
    query (the (workspace_id, created_at) index bounds it); workflows without runs are absent."""
    query = (
        select(WorkflowRun.workflow_id, WorkflowRun.status, func.count())
        .where(WorkflowRun.workspace_id == workspace_id, WorkflowRun.created_at >= since)
        .group_by(WorkflowRun.workflow_id, WorkflowRun.status)
    )
    if workflow_id is not None:
        query = query.where(WorkflowRun.workflow_id == workflow_id)
    out: dict[uuid.UUID, dict[str, int]] = {}
    for found_id, status, count in session.execute(query):
        out.setdefault(found_id, {})[status] = int(count)
    return out


def count_in_flight(session: Session, workspace_id: uuid.UUID, workflow_id: uuid.UUID) -> int:
    """Runs of the workflow still PENDING or RUNNING: what deactivating it would cancel."""
    query = select(func.count()).select_from(WorkflowRun).where(
        WorkflowRun.workspace_id == workspace_id,
        WorkflowRun.workflow_id == workflow_id,
        WorkflowRun.status_in(IN_FLIGHT),
    )
    return int(session.scalar(query) or 0)
