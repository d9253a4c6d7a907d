"""Cancel many runs of one workflow at once: the background sweep after a deactivation.

Each run is canceled as an operator cancel does it (services/run.cancel), but with a few
set-based statements per batch instead of a handful per run: a run no worker holds is
CANCELED at once (its open steps too, its job removed); a run a worker holds is flagged
(jobs.cancel_requested) and its worker stops it at the next step boundary. A terminal run
never changes: every write is guarded by the run's status.

Dialect rule: on PostgreSQL the batch's job rows are locked in run id order (the order
worker commits lock them, so neither deadlocks) with SKIP LOCKED, so a sweep never waits
behind a worker's commit or another sweep; a skipped run is taken by a later batch. SQLite
needs nothing more: every write transaction starts with BEGIN IMMEDIATE and runs alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Select, delete, false, func, or_, select, update
from sqlalchemy.orm import Session

from relayflow.engine.status import IN_FLIGHT
from relayflow.storage import dialect
from relayflow.storage.models import Job, RunStep, WorkflowRun

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Batch:
    """What one batch did: runs CANCELED now, runs flagged for their worker, runs skipped
    because another transaction held their job row (PostgreSQL only)."""

    selected: int
    canceled: int
    flagged: int
    skipped: int


def _open(query: Select[T], workspace_id: uuid.UUID, workflow_id: uuid.UUID,
          before: datetime) -> Select[T]:
    """Runs of the workflow created at or before `before`, still in flight and not yet
    flagged for their worker (a flagged run is as good as canceled: its worker stops it).
    The (workspace_id, workflow_id, created_at, id) index serves it in that order."""
    return (
        query.select_from(WorkflowRun)
        .outerjoin(Job, Job.run_id == WorkflowRun.id)
        .where(WorkflowRun.workspace_id == workspace_id,
               WorkflowRun.workflow_id == workflow_id,
               WorkflowRun.created_at <= before,
               WorkflowRun.status_in(IN_FLIGHT),
               or_(Job.cancel_requested.is_(None), Job.cancel_requested == false()))
    )


def count_open(session: Session, workspace_id: uuid.UUID, workflow_id: uuid.UUID,
               before: datetime) -> int:
    """How many runs the sweep has still to cancel."""
    query = _open(select(func.count()), workspace_id, workflow_id, before)
    return int(session.scalar(query) or 0)


def cancel_batch(
    session: Session, *, workspace_id: uuid.UUID, workflow_id: uuid.UUID, before: datetime,
    now: datetime, limit: int, canceled_by: str, reason: str,
) -> Batch:
    """Cancel up to `limit` of the runs `count_open` counts, oldest first; each records
    `canceled_by` and `reason` unless someone asked to cancel it before."""
    query = _open(select(WorkflowRun.id), workspace_id, workflow_id, before)
    ids = list(session.scalars(query.order_by(WorkflowRun.created_at, WorkflowRun.id)
                               .limit(limit)))
    if not ids:
        return Batch(0, 0, 0, 0)
    with_job = set(session.scalars(select(Job.run_id).where(Job.run_id.in_(ids))))
    # Held: a lease live by the database's clock (no worker's clock decides, see job.py).
    live = Job.lease_expires_at.is_not(None) & (Job.lease_expires_at > dialect.now(session))
    locking = (select(Job.run_id, live).where(Job.run_id.in_(ids)).order_by(Job.run_id))
    if session.get_bind().dialect.name == "postgresql":
        locking = locking.with_for_update(skip_locked=True)
    locked = {run_id: bool(is_held) for run_id, is_held in session.execute(locking)}
    held = [run_id for run_id, is_held in locked.items() if is_held]
    free = [i for i in ids if i not in with_job or (i in locked and i not in held)]
    # Only runs whose job row this transaction holds (or that have none): a run row a
    # worker's commit is writing would make the sweep wait behind it.
    named(session, [*free, *held], canceled_by, reason)
    canceled = finish(session, free, now)
    if held:
        session.execute(update(Job).where(Job.run_id.in_(held)).values(cancel_requested=True)
                        .execution_options(synchronize_session=False))
    return Batch(len(ids), len(canceled), len(held), len(with_job) - len(locked))


def named(session: Session, run_ids: Sequence[uuid.UUID], canceled_by: str,
          reason: str) -> None:
    """Who cancels the runs and why, on those still in flight that nobody asked to cancel
    before (what a run a worker holds shows until the worker stops it)."""
    if not run_ids:
        return
    session.execute(
        update(WorkflowRun)
        .where(WorkflowRun.id.in_(run_ids), WorkflowRun.status.in_(IN_FLIGHT),
               WorkflowRun.canceled_by.is_(None))
        .values(canceled_by=canceled_by, cancel_reason=reason)
        .execution_options(synchronize_session=False))


def finish(session: Session, run_ids: Sequence[uuid.UUID], now: datetime) -> list[uuid.UUID]:
    """CANCELED now, for runs no worker holds: the run, its open steps and its job. Returns
    the runs that changed (a run already terminal is left as it is)."""
    if not run_ids:
        return []
    changed = list(session.scalars(
        update(WorkflowRun)
        .where(WorkflowRun.id.in_(run_ids), WorkflowRun.status.in_(IN_FLIGHT))
        .values(status="CANCELED", finished_at=now, wake_at=None, error=None)
        .returning(WorkflowRun.id)
        .execution_options(synchronize_session=False)
    ))
    if changed:
        session.execute(
            update(RunStep)
            .where(RunStep.run_id.in_(changed), RunStep.status.in_(("RUNNING", "WAITING")))
            .values(status="CANCELED", finished_at=now)
            .execution_options(synchronize_session=False)
        )
        session.execute(delete(Job).where(Job.run_id.in_(changed))
                        .execution_options(synchronize_session=False))
    return changed
