"""The two reads the worker makes just before a send: the channel's provider configuration
and the contact's suppression state, both current as of the send."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relayflow.storage.models import Contact, Provider


def config(session: Session, workspace_id: uuid.UUID, channel: str) -> dict[str, Any] | None:
    return session.scalar(select(Provider.config).where(Provider.workspace_id == workspace_id,
                                                         Provider.channel == channel))


def suppressed(session: Session, contact_id: uuid.UUID | None) -> dict[str, Any]:
    if contact_id is None:
        return {}
    return session.scalar(select(Contact.suppressed).where(Contact.id == contact_id)) or {}
