from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from relayflow.storage.models import Provider


def get(session: Session, workspace_id: uuid.UUID, channel: str) -> Provider | None:
    return session.scalar(
        select(Provider).where(Provider.workspace_id == workspace_id, Provider.channel == channel)
    )


def list_all(session: Session, workspace_id: uuid.UUID) -> list[Provider]:
    return list(session.scalars(
        select(Provider).where(Provider.workspace_id == workspace_id).order_by(Provider.channel)
    ))


def add(session: Session, provider: Provider) -> None:
    session.add(provider)
    session.flush()


def remove(session: Session, workspace_id: uuid.UUID, channel: str) -> int:
    result = session.execute(
        delete(Provider).where(Provider.workspace_id == workspace_id, Provider.channel == channel)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
