"""Deleting old history. Steps go with their runs (ON DELETE CASCADE)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from relayflow.engine.status import TERMINAL
from relayflow.storage.models import DeliveryAttempt, RunStep, WorkflowRun


def delete_runs_finished_before(session: Session, cutoff: datetime, *, batch: int = 1000) -> int:
    """Delete terminal runs (and their steps) that finished before `cutoff`, in batches so
    a large prune never holds one huge transaction's locks."""
    ids = list(session.scalars(
        select(WorkflowRun.id)
        .where(WorkflowRun.status.in_(TERMINAL), WorkflowRun.finished_at < cutoff)
        .limit(batch)))
    if not ids:
        return 0
    session.execute(delete(RunStep).where(RunStep.run_id.in_(ids)))
    session.execute(delete(WorkflowRun).where(WorkflowRun.id.in_(ids)))
    return len(ids)


def delete_attempts_created_before(session: Session, cutoff: datetime, *,
                                   batch: int = 1000) -> int:
    ids = list(session.scalars(
        select(DeliveryAttempt.id).where(DeliveryAttempt.created_at < cutoff).limit(batch)))
    if ids:
        session.execute(delete(DeliveryAttempt).where(DeliveryAttempt.id.in_(ids)))
    return len(ids)
