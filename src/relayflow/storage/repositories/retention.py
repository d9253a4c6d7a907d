"""Deleting old history, a workspace at a time, walking its runs and attempts oldest
first through the (workspace, created_at, id) indexes the lists use: each batch is an
index range from where the last one stopped, never a scan of the table. Steps go with
their runs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session

from relayflow.engine.status import TERMINAL, DeliveryStatus, RunStatus
from relayflow.storage.models import DeliveryAttempt, RunStep, WorkflowRun

# Attempts that failed, kept as long as failed runs.
FAILED_ATTEMPTS = (DeliveryStatus.FAILED, DeliveryStatus.BOUNCED)
# Attempts whose outcome may still change (a retry due, a send under way) stay.
OPEN_ATTEMPTS = (DeliveryStatus.QUEUED,)

Position = tuple[datetime, uuid.UUID]


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """What of one workspace may go: finished runs and attempts from before `kept`, failed
    ones from before `failed`."""

    workspace_id: uuid.UUID
    kept: datetime
    failed: datetime


@dataclass(frozen=True, slots=True)
class Batch:
    """One stretch of the walk: the ids that may go, and where the next stretch starts
    (None: the walk is over)."""

    gone: Sequence[uuid.UUID]
    following: Position | None


def runs_batch(session: Session, cutoffs: Cutoffs, *, after: Position | None,
               limit: int) -> Batch:
    """The next `limit` runs of the workspace created before the later cutoff, oldest first
    from `after`; those that may go are terminal and finished before their cutoff (a run
    finishes after it is created, so none created later can)."""
    query = select(WorkflowRun.id, WorkflowRun.created_at, WorkflowRun.status,
                   WorkflowRun.finished_at).where(
        WorkflowRun.workspace_id == cutoffs.workspace_id,
        WorkflowRun.created_at < max(cutoffs.kept, cutoffs.failed))
    if after is not None:
        query = query.where(tuple_(WorkflowRun.created_at, WorkflowRun.id) > after)
    rows = session.execute(
        query.order_by(WorkflowRun.created_at, WorkflowRun.id).limit(limit)).all()
    gone = [run_id for run_id, _, status, finished in rows
            if status in TERMINAL and finished is not None
            and finished < (cutoffs.failed if status == RunStatus.FAILED else cutoffs.kept)]
    return Batch(gone, (rows[-1][1], rows[-1][0]) if len(rows) == limit else None)


def attempts_batch(session: Session, cutoffs: Cutoffs, *, after: Position | None,
                   limit: int) -> Batch:
    """Like runs_batch, for delivery attempts: those not still queued, created before
    their cutoff."""
    query = select(DeliveryAttempt.id, DeliveryAttempt.created_at,
                   DeliveryAttempt.status).where(
        DeliveryAttempt.workspace_id == cutoffs.workspace_id,
        DeliveryAttempt.created_at < max(cutoffs.kept, cutoffs.failed))
    if after is not None:
        query = query.where(tuple_(DeliveryAttempt.created_at, DeliveryAttempt.id) > after)
    rows = session.execute(
        query.order_by(DeliveryAttempt.created_at, DeliveryAttempt.id).limit(limit)).all()
    gone = [attempt_id for attempt_id, created, status in rows
            if status not in OPEN_ATTEMPTS
            and created < (cutoffs.failed if status in FAILED_ATTEMPTS else cutoffs.kept)]
    return Batch(gone, (rows[-1][1], rows[-1][0]) if len(rows) == limit else None)


def delete_runs(session: Session, run_ids: Sequence[uuid.UUID]) -> None:
    """Delete these runs and their steps (through the steps' (run_id, seq) index)."""
    if run_ids:
        session.execute(delete(RunStep).where(RunStep.run_id.in_(run_ids)))
        session.execute(delete(WorkflowRun).where(WorkflowRun.id.in_(run_ids)))


def delete_attempts(session: Session, attempt_ids: Sequence[uuid.UUID]) -> None:
    if attempt_ids:
        session.execute(delete(DeliveryAttempt).where(DeliveryAttempt.id.in_(attempt_ids)))
