"""A workspace's network allow-list (one row per workspace, none until it is set)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from relayflow.storage.models import NetworkSetting


def get_or_none(session: Session, workspace_id: uuid.UUID) -> NetworkSetting | None:
    return session.scalar(
        select(NetworkSetting).where(NetworkSetting.workspace_id == workspace_id))


def add(session: Session, setting: NetworkSetting) -> None:
    session.add(setting)
    session.flush()
