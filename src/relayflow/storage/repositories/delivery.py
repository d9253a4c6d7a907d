from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from relayflow.storage.models import DeliveryAttempt


def get_many(session: Session, ids: Sequence[uuid.UUID | None]) -> dict[uuid.UUID, DeliveryAttempt]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    query = select(DeliveryAttempt).where(DeliveryAttempt.id.in_(wanted))
    return {a.id: a for a in session.scalars(query)}


def get(session: Session, workspace_id: uuid.UUID, attempt_id: uuid.UUID) -> DeliveryAttempt | None:
    return session.scalar(select(DeliveryAttempt).where(
        DeliveryAttempt.workspace_id == workspace_id, DeliveryAttempt.id == attempt_id))
