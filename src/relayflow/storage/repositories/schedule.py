"""Queries for the schedule trigger: due workflows, their audience, and their tick state.

Dialect differences live in `lock_workflow` alone: PostgreSQL takes the workflow row with
FOR NO KEY UPDATE SKIP LOCKED (so two schedulers share out workflows instead of queueing,
and a concurrent deactivate waits for the batch, then cancels its runs); SQLite needs
nothing more because every write transaction starts with BEGIN IMMEDIATE.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from relayflow.storage.models import (
    Contact,
    ScheduleTick,
    Workflow,
    WorkflowRun,
    WorkflowVersion,
)


def list_active(session: Session) -> list[tuple[Workflow, dict[str, Any]]]:
    """Every ACTIVE schedule workflow of every workspace, with its current definition."""
    query = (
        select(Workflow, WorkflowVersion.definition)
        .join(WorkflowVersion, WorkflowVersion.id == Workflow.current_version_id)
        .where(Workflow.status == "ACTIVE", Workflow.trigger_type == "schedule")
        .order_by(Workflow.id)
    )
    return [(workflow, definition) for workflow, definition in session.execute(query)]


def lock_workflow(session: Session, workflow_id: uuid.UUID) -> Workflow | None:
    """The workflow, held until the transaction ends; None when it is gone or, on
    PostgreSQL, when another transaction holds it (try again on a later poll)."""
    query = select(Workflow).where(Workflow.id == workflow_id)
    if session.get_bind().dialect.name == "postgresql":
        # NO KEY UPDATE: runs being inserted elsewhere (FOR KEY SHARE via their foreign
        # key) are not blocked; status changes and other schedulers are.
        query = query.with_for_update(key_share=True, skip_locked=True)
    return session.scalar(query)


def version_definitions(
    session: Session, workflow_id: uuid.UUID
) -> list[tuple[datetime, dict[str, Any]]]:
    """(created_at, definition) of every version, newest first."""
    query = (
        select(WorkflowVersion.created_at, WorkflowVersion.definition)
        .where(WorkflowVersion.workflow_id == workflow_id)
        .order_by(WorkflowVersion.number.desc())
    )
    return [(created_at, definition) for created_at, definition in session.execute(query)]


def contacts_after(
    session: Session, workspace_id: uuid.UUID, *, after: uuid.UUID | None, limit: int
) -> list[Contact]:
    """One page of the workspace's contacts in id order, keyset on the id."""
    query = select(Contact).where(Contact.workspace_id == workspace_id)
    if after is not None:
        query = query.where(Contact.id > after)
    return list(session.scalars(query.order_by(Contact.id).limit(limit)))


def existing_keys(session: Session, workflow_id: uuid.UUID, keys: Collection[str]) -> set[str]:
    """Which of these idempotency keys already have a run of the workflow."""
    if not keys:
        return set()
    query = select(WorkflowRun.idempotency_key).where(
        WorkflowRun.workflow_id == workflow_id, WorkflowRun.idempotency_key.in_(list(keys))
    )
    return {key for key in session.scalars(query) if key is not None}


def record_tick(session: Session, workflow_id: uuid.UUID, tick: datetime) -> None:
    """Remember `tick` as done, never moving the mark backwards."""
    session.execute(
        update(Workflow)
        .where(Workflow.id == workflow_id)
        .where(or_(Workflow.schedule_last_tick.is_(None), Workflow.schedule_last_tick < tick))
        .values(schedule_last_tick=tick)
        .execution_options(synchronize_session=False)
    )


def add_tick(session: Session, tick: ScheduleTick) -> None:
    session.add(tick)


def ticks_of(session: Session, workspace_id: uuid.UUID, workflow_id: uuid.UUID, *,
             start: datetime | None = None, end: datetime | None = None,
             limit: int = 100) -> list[ScheduleTick]:
    """The workflow's fired ticks, newest first (of a window)."""
    query = select(ScheduleTick).where(ScheduleTick.workspace_id == workspace_id,
                                       ScheduleTick.workflow_id == workflow_id)
    if start is not None:
        query = query.where(ScheduleTick.tick >= start)
    if end is not None:
        query = query.where(ScheduleTick.tick < end)
    return list(session.scalars(query.order_by(ScheduleTick.tick.desc()).limit(limit)))
