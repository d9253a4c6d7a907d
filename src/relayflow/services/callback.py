"""Provider status callbacks: delivered, bounced, complained — signed like webhooks.

`POST /providers/{workspace}/{channel}/events` with `Relayflow-Signature` computed with
the secret named by the provider's `events_secret` (or, during a rotation, with
`<events_secret>_PREVIOUS`). A hard bounce or a complaint makes the contact's channel
undeliverable: later sends to it are SUPPRESSED. The same signed callback received again
changes nothing and records no second event: it is answered as before, marked `duplicate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from relayflow.errors import InvalidInput, NotFound, Unauthorized
from relayflow.services import failures, signed
from relayflow.services import webhook as webhook_service
from relayflow.services.runtime import Runtime
from relayflow.storage.ids import parse_id
from relayflow.storage.models import DeliveryAttempt
from relayflow.storage.repositories import provider_config as provider_repo
from relayflow.storage.repositories import workspace as workspace_repo

EVENT_TYPES = ("delivered", "bounced", "complained")
# The attempt status each event moves to; a complaint leaves the delivery as it was.
_STATUS = {"delivered": "DELIVERED", "bounced": "BOUNCED"}
_MOVABLE = {"DELIVERED": ("SENT",), "BOUNCED": ("SENT", "DELIVERED")}


@dataclass(frozen=True, slots=True)
class Applied:
    attempt_id: str
    status: str
    suppressed: str | None


def _events(body: dict[str, Any]) -> list[dict[str, Any]]:
    events = body.get("events", [body])
    if not isinstance(events, list) or not events or len(events) > 100:
        raise InvalidInput("send one event object, or `events`: a list of 1 to 100 of them")
    for event in events:
        if not isinstance(event, dict) or event.get("type") not in EVENT_TYPES:
            raise InvalidInput(f"each event needs a type: one of {', '.join(EVENT_TYPES)}")
        if not (event.get("message_id") or event.get("attempt_id")):
            raise InvalidInput("each event needs message_id (the provider's) or attempt_id")
    return events


@dataclass(frozen=True, slots=True)
class Received:
    applied: list[Applied]
    duplicate: bool  # the same signed callback was already received: nothing was changed


def receive(session: Session, runtime: Runtime, *, workspace_slug: str, channel: str,
            raw_body: bytes, signature: str | None, now: datetime) -> Received:
    workspace = workspace_repo.get_by_slug(session, workspace_slug)
    config = provider_repo.config(session, workspace.id, channel) if workspace else None
    if workspace is None or config is None:
        raise NotFound("no such provider")
    secret_name = config.get("events_secret")
    values = signed.signing_values(
        session, workspace_id=workspace.id, name=str(secret_name), cipher=runtime.cipher,
        used_by=f"the {channel} provider of workspace {workspace.slug!r}",
    ) if secret_name else None
    if values is None:
        raise Unauthorized("this provider has no events_secret: callbacks are refused")
    signed_at = signed.verify_signature(
        secret=values[0], previous=values[1], header=signature, body=raw_body, now=now)
    events = _events(webhook_service.parse_event(raw_body))
    if signed.remember(session, scope=f"callback:{workspace.id}:{channel}",
                                timestamp=signed_at, body=raw_body):
        return Received([_unchanged(session, workspace.id, channel, e) for e in events], True)
    return Received([_apply(session, workspace.id, channel, e, now) for e in events], False)


def _attempt(session: Session, workspace_id: Any, channel: str,
             event: dict[str, Any]) -> DeliveryAttempt:
    attempt_id = parse_id(str(event["attempt_id"])) if event.get("attempt_id") else None
    attempt = provider_repo.attempt_for_event(
        session, workspace_id, channel, message_id=str(event.get("message_id") or ""),
        attempt_id=attempt_id)
    if attempt is None:
        raise NotFound("no delivery attempt with that id on this channel")
    return attempt


def _suppression(event: dict[str, Any]) -> str | None:
    """What the event makes of the contact's channel: a hard bounce or a complaint."""
    if event["type"] == "bounced" and event.get("bounce", "hard") == "hard":
        return "bounced"
    return "complained" if event["type"] == "complained" else None


def _unchanged(session: Session, workspace_id: Any, channel: str,
               event: dict[str, Any]) -> Applied:
    """A replayed event's answer: where its attempt stands, as the first answer said it."""
    attempt = _attempt(session, workspace_id, channel, event)
    suppressed = _suppression(event) if attempt.contact_id is not None else None
    return Applied(str(attempt.id), attempt.status, suppressed)


def _apply(session: Session, workspace_id: Any, channel: str, event: dict[str, Any],
           now: datetime) -> Applied:
    attempt = _attempt(session, workspace_id, channel, event)
    kind = event["type"]
    target = _STATUS.get(kind)
    if target and attempt.status in _MOVABLE[target]:
        attempt.status = target
        if target == "BOUNCED":
            bounce = str(event.get("bounce", "hard"))
            attempt.fingerprint = failures.name_attempt(
                session, attempt, {"error": str(event.get("reason") or f"{bounce} bounce")},
                now, code=f"bounce {bounce}")["fingerprint"]
    record = {"type": kind, "at": now.isoformat(), **({"bounce": event["bounce"]}
                                                       if "bounce" in event else {})}
    response = dict(attempt.provider_response or {})
    response["events"] = [*response.get("events", []), record]
    attempt.provider_response = response
    suppressed = _suppression(event) if attempt.contact_id is not None else None
    if suppressed is not None and attempt.contact_id is not None:
        contact = provider_repo.contact_for_update(session, attempt.contact_id)
        if contact is not None and not (contact.suppressed or {}).get(channel):
            contact.suppressed = {**(contact.suppressed or {}), channel: suppressed}
            contact.updated_at = now
    return Applied(str(attempt.id), attempt.status, suppressed)


def apply_event(session: Session, *, workspace_id: Any, channel: str, event: dict[str, Any],
                now: datetime) -> Applied:
    """Apply one already-verified provider event (e.g. `{"type": "delivered",
    "attempt_id": …}`); what `receive` does for each event of a signed callback."""
    return _apply(session, workspace_id, channel, event, now)
