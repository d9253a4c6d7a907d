from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from relayflow.storage.models import Secret


def names(session: Session, workspace_id: uuid.UUID) -> set[str]:
    return set(session.scalars(select(Secret.name).where(Secret.workspace_id == workspace_id)))


def get(session: Session, workspace_id: uuid.UUID, name: str) -> Secret | None:
    return session.scalar(
        select(Secret).where(Secret.workspace_id == workspace_id, Secret.name == name)
    )


def list_all(session: Session, workspace_id: uuid.UUID) -> list[Secret]:
    return list(
        session.scalars(
            select(Secret).where(Secret.workspace_id == workspace_id).order_by(Secret.name)
        )
    )


def add(session: Session, secret: Secret) -> None:
    session.add(secret)
    session.flush()


def remove(session: Session, workspace_id: uuid.UUID, name: str) -> int:
    result = session.execute(
        delete(Secret).where(Secret.workspace_id == workspace_id, Secret.name == name)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
