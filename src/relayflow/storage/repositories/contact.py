from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relayflow.storage.models import Contact


def get(session: Session, workspace_id: uuid.UUID, contact_id: uuid.UUID) -> Contact | None:
    return session.scalar(
        select(Contact).where(Contact.workspace_id == workspace_id, Contact.id == contact_id)
    )


def find(session: Session, workspace_id: uuid.UUID, *, field: str, value: str) -> Contact | None:
    column = {"email": Contact.email, "phone": Contact.phone, "external_id": Contact.external_id}
    return session.scalar(
        select(Contact).where(Contact.workspace_id == workspace_id, column[field] == value)
    )


def add(session: Session, contact: Contact) -> Contact:
    session.add(contact)
    session.flush()
    return contact


def get_many(session: Session, ids: Iterable[uuid.UUID], *, lock: bool = False) -> dict[
    uuid.UUID, Contact
]:
    ids = list(set(ids))
    if not ids:
        return {}
    query = select(Contact).where(Contact.id.in_(ids))
    if lock and session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return {c.id: c for c in session.scalars(query)}


def as_variables(contact: Contact) -> dict[str, Any]:
    """The `contact` template variable: attributes first, identity fields on top."""
    return {
        **(contact.attributes or {}),
        "id": str(contact.id),
        "email": contact.email,
        "phone": contact.phone,
        "external_id": contact.external_id,
    }
