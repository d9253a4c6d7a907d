from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from relayflow.storage.models import Workflow, WorkflowVersion


def get_by_key(session: Session, workspace_id: uuid.UUID, key: str) -> Workflow | None:
    return session.scalar(
        select(Workflow).where(Workflow.workspace_id == workspace_id, Workflow.key == key)
    )


def get(session: Session, workflow_id: uuid.UUID) -> Workflow | None:
    return session.get(Workflow, workflow_id)


def list_all(session: Session, workspace_id: uuid.UUID) -> list[Workflow]:
    return list(
        session.scalars(
            select(Workflow).where(Workflow.workspace_id == workspace_id).order_by(Workflow.key)
        )
    )


def keys(session: Session, workspace_id: uuid.UUID) -> set[str]:
    return set(session.scalars(select(Workflow.key).where(Workflow.workspace_id == workspace_id)))


def add(session: Session, workflow: Workflow) -> Workflow:
    session.add(workflow)
    session.flush()
    return workflow


def add_version(session: Session, version: WorkflowVersion) -> WorkflowVersion:
    session.add(version)
    session.flush()
    return version


def get_many(session: Session, workflow_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Workflow]:
    ids = list(set(workflow_ids))
    if not ids:
        return {}
    return {w.id: w for w in session.scalars(select(Workflow).where(Workflow.id.in_(ids)))}


def get_version(session: Session, version_id: uuid.UUID) -> WorkflowVersion | None:
    return session.get(WorkflowVersion, version_id)


def list_versions(session: Session, workflow_id: uuid.UUID) -> list[WorkflowVersion]:
    return list(
        session.scalars(
            select(WorkflowVersion)
            .where(WorkflowVersion.workflow_id == workflow_id)
            .order_by(WorkflowVersion.number.desc())
        )
    )


def next_version_number(session: Session, workflow_id: uuid.UUID) -> int:
    current = session.scalar(
        select(func.max(WorkflowVersion.number)).where(WorkflowVersion.workflow_id == workflow_id)
    )
    return (current or 0) + 1


def get_versions(
    session: Session, version_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, WorkflowVersion]:
    ids = list(set(version_ids))
    if not ids:
        return {}
    query = select(WorkflowVersion).where(WorkflowVersion.id.in_(ids))
    return {v.id: v for v in session.scalars(query)}


def next_to_sweep(session: Session) -> Workflow | None:
    """The workflow deactivated longest ago whose runs are still being canceled. On
    PostgreSQL its row is locked, skipping rows others hold: two workers sweep two
    workflows, and a sweep never waits behind a deactivate (which locks the row too)."""
    query = (select(Workflow).where(Workflow.cancel_before.is_not(None))
             .order_by(Workflow.cancel_before).limit(1))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return session.scalar(query)


def cancel_marks(
    session: Session, workflow_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, tuple[datetime, str | None]]:
    """`{workflow_id: (cancel_before, deactivated_by)}` for those of the workflows being
    swept."""
    ids = list(set(workflow_ids))
    if not ids:
        return {}
    query = select(Workflow.id, Workflow.cancel_before, Workflow.deactivated_by).where(
        Workflow.id.in_(ids), Workflow.cancel_before.is_not(None))
    return {found_id: (before, by) for found_id, before, by in session.execute(query)
            if before is not None}
