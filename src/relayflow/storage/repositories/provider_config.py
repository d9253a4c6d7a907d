"""The two reads the worker makes just before a send: the channel's provider configuration
and the contact's suppression state, both current as of the send."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relayflow.storage.models import Contact, DeliveryAttempt, Provider


def config(session: Session, workspace_id: uuid.UUID, channel: str) -> dict[str, Any] | None:
    return session.scalar(select(Provider.config).where(Provider.workspace_id == workspace_id,
                                                         Provider.channel == channel))


def suppressed(session: Session, contact_id: uuid.UUID | None) -> dict[str, Any]:
    if contact_id is None:
        return {}
    return session.scalar(select(Contact.suppressed).where(Contact.id == contact_id)) or {}


def attempt_for_event(session: Session, workspace_id: uuid.UUID, channel: str, *,
                      message_id: str | None, attempt_id: uuid.UUID | None,
                      ) -> DeliveryAttempt | None:
    """The attempt a provider callback speaks of: by our attempt id or its message id."""
    query = select(DeliveryAttempt).where(DeliveryAttempt.workspace_id == workspace_id,
                                          DeliveryAttempt.channel == channel)
    if attempt_id is not None:
        query = query.where(DeliveryAttempt.id == attempt_id)
    elif message_id:
        query = query.where(DeliveryAttempt.provider_message_id == message_id)
    else:
        return None
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return session.scalars(query.limit(1)).first()


def contact_for_update(session: Session, contact_id: uuid.UUID) -> Contact | None:
    query = select(Contact).where(Contact.id == contact_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return session.scalar(query)
