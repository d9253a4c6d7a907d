"""Deleting old history, a workspace at a time, walking its runs and attempts oldest
first through the (workspace, created_at, id) indexes the lists use: each batch is an
index range from where the last one stopped, never a scan of the table. Steps go with
their runs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

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
    rows = _oldest(session, WorkflowRun, (WorkflowRun.status, WorkflowRun.finished_at),
                   cutoffs, after=after, limit=limit)
    gone = [run_id for run_id, _, status, finished in rows
            if status in TERMINAL and finished is not None
            and finished < (cutoffs.failed if status == RunStatus.FAILED else cutoffs.kept)]
    return Batch(gone, _following(rows, limit))


def attempts_batch(session: Session, cutoffs: Cutoffs, *, after: Position | None,
                   limit: int) -> Batch:
    """Like runs_batch, for delivery attempts: those not still queued, created before
    their cutoff."""
    rows = _oldest(session, DeliveryAttempt, (DeliveryAttempt.status,), cutoffs, after=after,
                   limit=limit)
    gone = [attempt_id for attempt_id, created, status in rows
            if status not in OPEN_ATTEMPTS
            and created < (cutoffs.failed if status in FAILED_ATTEMPTS else cutoffs.kept)]
    return Batch(gone, _following(rows, limit))


def _oldest(session: Session, model: type[WorkflowRun] | type[DeliveryAttempt],
            columns: tuple[Any, ...], cutoffs: Cutoffs, *, after: Position | None,
            limit: int) -> Sequence[tuple[Any, ...]]:
    """(id, created_at, *columns) of the workspace's next `limit` rows created before the
    later cutoff, oldest first after `after`: a range of its (workspace, created_at, id)
    index."""
    query = select(model.id, model.created_at, *columns).where(
        model.workspace_id == cutoffs.workspace_id,
        model.created_at < max(cutoffs.kept, cutoffs.failed))
    if after is not None:
        query = query.where(tuple_(model.created_at, model.id) > after)
    rows = session.execute(query.order_by(model.created_at, model.id).limit(limit)).all()
    return cast(Sequence[tuple[Any, ...]], rows)


def _following(rows: Sequence[tuple[Any, ...]], limit: int) -> Position | None:
    return (rows[-1][1], rows[-1][0]) if len(rows) == limit else None


def delete_runs(session: Session, run_ids: Sequence[uuid.UUID]) -> None:
    """Delete these runs and their steps (through the steps' (run_id, seq) index)."""
    if run_ids:
        session.execute(delete(RunStep).where(RunStep.run_id.in_(run_ids)))
        session.execute(delete(WorkflowRun).where(WorkflowRun.id.in_(run_ids)))


def delete_attempts(session: Session, attempt_ids: Sequence[uuid.UUID]) -> None:
    if attempt_ids:
        session.execute(delete(DeliveryAttempt).where(DeliveryAttempt.id.in_(attempt_ids)))
