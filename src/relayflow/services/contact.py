from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

import phonenumbers
from sqlalchemy.orm import Session

from relayflow.errors import InvalidInput, NotFound
from relayflow.storage.ids import parse_id
from relayflow.storage.models import Contact
from relayflow.storage.repositories import contact as contact_repo

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalize_email(value: str) -> str:
    email = value.strip().lower()
    if not EMAIL_RE.match(email):
        raise InvalidInput(f"{value!r} is not an email address")
    return email


def normalize_phone(value: str, *, region: str | None = None) -> str:
    """E.164 (`+14155550123`). Without a leading + the number is read in `region`."""
    try:
        number = phonenumbers.parse(value.strip(), region)
    except phonenumbers.NumberParseException as exc:
        hint = "" if region else " (write it with its country code, e.g. +14155550123)"
        raise InvalidInput(f"{value!r} is not a phone number{hint}") from exc
    if not phonenumbers.is_possible_number(number):
        raise InvalidInput(f"{value!r} is not a phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def resolve(
    session: Session, *, workspace_id: uuid.UUID, spec: dict[str, Any], now: datetime,
    phone_region: str | None = None,
) -> Contact:
    """Find a contact by id, email, phone or external_id; create it if an address is given."""
    if "id" in spec:
        contact_id = parse_id(str(spec["id"]))
        contact = contact_repo.get(session, workspace_id, contact_id) if contact_id else None
        if contact is None:
            raise NotFound(f"no contact {spec['id']!r} in this workspace")
        return contact
    values: dict[str, str] = {}
    if spec.get("email"):
        values["email"] = normalize_email(str(spec["email"]))
    if spec.get("phone"):
        values["phone"] = normalize_phone(str(spec["phone"]), region=phone_region)
    if spec.get("external_id"):
        values["external_id"] = str(spec["external_id"])
    if not values:
        raise InvalidInput("contact needs one of id, email, phone or external_id")
    for field in ("email", "phone", "external_id"):
        if field in values:
            found = contact_repo.find(session, workspace_id, field=field, value=values[field])
            if found is not None:
                return found
    attributes = spec.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise InvalidInput("contact attributes must be an object")
    return contact_repo.add(session, Contact(
        workspace_id=workspace_id, attributes=attributes, suppressed={}, created_at=now,
        updated_at=now, **values,
    ))
