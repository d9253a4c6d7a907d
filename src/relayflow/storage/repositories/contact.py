from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import Table, func, insert, or_, select
from sqlalchemy.orm import Session

from relayflow.storage.models import Contact

_BY_FIELD = {"email": Contact.email, "phone": Contact.phone, "external_id": Contact.external_id}


def get(session: Session, workspace_id: uuid.UUID, contact_id: uuid.UUID) -> Contact | None:
    return session.scalar(
        select(Contact).where(Contact.workspace_id == workspace_id, Contact.id == contact_id)
    )


def find(session: Session, workspace_id: uuid.UUID, *, field: str, value: str) -> Contact | None:
    return session.scalar(
        select(Contact).where(Contact.workspace_id == workspace_id, _BY_FIELD[field] == value)
    )


def find_many(session: Session, workspace_id: uuid.UUID,
              wanted: Iterable[dict[str, str]]) -> dict[tuple[str, str], Contact]:
    """The contacts any of the identifiers match, by `(field, value)`, in one query."""
    values: dict[str, set[str]] = {}
    for identifiers in wanted:
        for field, value in identifiers.items():
            values.setdefault(field, set()).add(value)
    if not values:
        return {}
    query = select(Contact).where(
        Contact.workspace_id == workspace_id,
        or_(*(_BY_FIELD[field].in_(sorted(found)) for field, found in values.items())),
    )
    found_by: dict[tuple[str, str], Contact] = {}
    for contact in session.scalars(query):
        for field in values:
            value = getattr(contact, field)
            if value is not None:
                found_by[(field, value)] = contact
    return found_by


def find_any(session: Session, workspace_id: uuid.UUID, values: dict[str, str]) -> dict[
    str, Contact
]:
    """The contact each identifier matches (`{"email": c1, "phone": c2}`), in one query."""
    if not values:
        return {}
    query = select(Contact).where(
        Contact.workspace_id == workspace_id,
        or_(*(_BY_FIELD[field] == value for field, value in values.items())),
    )
    found: dict[str, Contact] = {}
    for contact in session.scalars(query):
        for field, value in values.items():
            if getattr(contact, field) == value:
                found[field] = contact
    return found


def list_page(
    session: Session, workspace_id: uuid.UUID, *, limit: int, search: str | None = None,
    phone_search: str | None = None, before: uuid.UUID | None = None,
) -> list[Contact]:
    """Newest first, keyset on the time-ordered id. `search` matches a substring of the
    email, phone or external_id, ignoring case; `phone_search` (digits) of the phone only."""
    query = select(Contact).where(Contact.workspace_id == workspace_id)
    if search:
        needle = search.lower()
        matches = [
            func.lower(Contact.email).contains(needle, autoescape=True),
            func.lower(Contact.external_id).contains(needle, autoescape=True),
            Contact.phone.contains(phone_search or needle, autoescape=True),
        ]
        query = query.where(or_(*matches))
    if before is not None:
        query = query.where(Contact.id < before)
    return list(session.scalars(query.order_by(Contact.id.desc()).limit(limit)))


def add(session: Session, contact: Contact) -> Contact:
    session.add(contact)
    session.flush()
    return contact


def add_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert new contacts as plain rows (Core, not the ORM's unit of work)."""
    if rows:
        session.execute(insert(cast(Table, Contact.__table__)), rows)


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


def list_page_newer(
    session: Session, workspace_id: uuid.UUID, *, limit: int, after: uuid.UUID,
    search: str | None = None, phone_search: str | None = None,
) -> list[Contact]:
    """The `limit` contacts just newer than `after` (same matching as `list_page`), newest
    first: the page before a cursor, walking the id keyset forwards."""
    query = select(Contact).where(Contact.workspace_id == workspace_id, Contact.id > after)
    if search:
        needle = search.lower()
        query = query.where(or_(
            func.lower(Contact.email).contains(needle, autoescape=True),
            func.lower(Contact.external_id).contains(needle, autoescape=True),
            Contact.phone.contains(phone_search or needle, autoescape=True),
        ))
    found = list(session.scalars(query.order_by(Contact.id).limit(limit)))
    return found[::-1]
