"""Signed one-click unsubscribe links (RFC 8058).

A link names a workspace, a contact and a channel, signed with a key derived from
RELAYFLOW_SECRET_KEY; it carries no expiry, because a link in an old email must keep
working. It works once: afterwards the contact is already unsubscribed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from relayflow.errors import Conflict, InvalidInput
from relayflow.services import workspace as workspace_service
from relayflow.services.runtime import Runtime
from relayflow.storage.ids import parse_id
from relayflow.storage.repositories import contact as contact_repo

CHANNELS = ("email", "sms")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def token(runtime: Runtime, *, workspace_id: uuid.UUID, contact_id: uuid.UUID,
          channel: str) -> str:
    payload = f"{workspace_id}:{contact_id}:{channel}".encode()
    mac = hmac.new(runtime.cipher.derive("unsubscribe"), payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac[:18])}"


def url(runtime: Runtime, *, workspace_id: uuid.UUID, contact_id: uuid.UUID,
        channel: str) -> str:
    signed = token(runtime, workspace_id=workspace_id, contact_id=contact_id, channel=channel)
    return f"{runtime.base_url}/u/{signed}"


def urls_for(runtime: Runtime, *, workspace_id: uuid.UUID,
             contact_id: uuid.UUID | None) -> dict[str, str]:
    if contact_id is None:
        return {}
    return {channel: url(runtime, workspace_id=workspace_id, contact_id=contact_id,
                         channel=channel) for channel in CHANNELS}


def list_headers(urls: dict[str, str], channel: str) -> dict[str, str]:
    """RFC 8058 one-click unsubscribe headers for a message on `channel` to a contact whose
    unsubscribe links are `urls` (email only; none without a contact)."""
    link = urls.get(channel)
    if channel != "email" or not link:
        return {}
    return {"List-Unsubscribe": f"<{link}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def read(runtime: Runtime, text: str) -> tuple[uuid.UUID, uuid.UUID, str]:
    """(workspace id, contact id, channel) of a genuine token; InvalidInput otherwise."""
    invalid = InvalidInput("This unsubscribe link is not valid.")
    try:
        payload_part, mac_part = text.split(".", 1)
        payload, mac = _unb64(payload_part), _unb64(mac_part)
    except (ValueError, UnicodeError):
        raise invalid from None
    expected = hmac.new(runtime.cipher.derive("unsubscribe"), payload,
                        hashlib.sha256).digest()[:18]
    if not hmac.compare_digest(mac, expected):
        raise invalid
    try:
        workspace_text, contact_text, channel = payload.decode().split(":")
    except (UnicodeDecodeError, ValueError):
        raise invalid from None
    workspace_id, contact_id = parse_id(workspace_text), parse_id(contact_text)
    if workspace_id is None or contact_id is None or channel not in CHANNELS:
        raise invalid
    return workspace_id, contact_id, channel


def unsubscribe(session: Session, runtime: Runtime, *, text: str, now: datetime) -> str:
    """Unsubscribe the link's contact from its channel; returns the channel."""
    workspace_id, contact_id, channel = read(runtime, text)
    contact = contact_repo.get(session, workspace_id, contact_id)
    if contact is None:
        raise InvalidInput("This unsubscribe link is not valid.")
    if (contact.suppressed or {}).get(channel):
        raise Conflict(f"Already unsubscribed from {channel}.")
    contact.suppressed = {**(contact.suppressed or {}), channel: "unsubscribed"}
    contact.updated_at = now
    workspace_service.audit(session, workspace_id=workspace_id, actor="contact",
                            action="contact.unsubscribe", target_type="contact",
                            target_id=str(contact_id), now=now, detail={"channel": channel})
    return channel
