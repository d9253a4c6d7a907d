"""Audit events: who did what to which object, and when. Written in the same transaction
as the change they describe, so an event exists exactly when its change does."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from relayflow.services import paging
from relayflow.storage.models import AuditEvent
from relayflow.storage.repositories import workspace as workspace_repo

# The actions recorded so far. Other features may add more, so the `action` filter is an
# exact match that never refuses a name (an unknown one simply matches nothing).
ACTIONS = {
    "run.cancel": "an operator canceled a run",
    "run.retry": "an operator retried a finished run",
    "workflow.activate": "a workflow was activated",
    "workflow.deactivate": "a workflow was deactivated (its in-flight runs canceled)",
    "key.create": "an API key was created",
    "key.revoke": "an API key was revoked (by hand, or with the member who created it)",
    "member.add": "a member was added",
    "member.role": "a member's role was changed (from, to, and the keys of theirs it revoked)",
    "member.remove": "a member was removed (how many of their sessions ended, and the keys "
                     "they created that were revoked)",
    "member.password_reset": "a member's password was replaced by a random one (never "
                             "recorded) and their sessions ended",
    "secret.set": "a secret was created or replaced",
    "secret.delete": "a secret was deleted",
    "provider.set": "a channel's provider was set",
    "provider.delete": "a channel was reset to the outbox",
    "member.login": "a member signed in",
    "delivery.resend": "an operator resent a message",
    "workflow.webhook_rotate": "a workflow's webhook address was replaced",
    "contact.unsubscribe": "a contact unsubscribed",
    "contact.erase": "an admin erased a contact's personal data (the reason, and how many runs "
                     "and messages were scrubbed)",
    "contact.attributes": "a contact's attributes were changed through the API (the names "
                          "set and removed, not their values)",
    "contact.suppression_lift": "an admin lifted a contact's suppression on a channel (what it "
                                "was, and why it was lifted)",
    "network.set": "the workspace's network allow-list was replaced",
    "frequency.set": "the workspace's per-contact frequency caps were replaced",
    "retention.set": "how long the workspace keeps its history was changed",
    "bulk.create": "an operator started a bulk retry or cancel (its filter and run count)",
    "bulk.stop": "an operator stopped a bulk operation before its end",
    "bulk.finish": "a bulk operation acted on all its runs (its counts)",
}


def record(
    session: Session, *, workspace_id: uuid.UUID, actor: str, action: str, target_type: str,
    target_id: str, now: datetime, detail: dict[str, Any] | None = None,
) -> None:
    workspace_repo.add_audit(
        session,
        AuditEvent(workspace_id=workspace_id, actor=actor[:320], action=action,
                   target_type=target_type, target_id=target_id[:64], detail=detail or {},
                   at=now),
    )


@dataclass(frozen=True, slots=True)
class AuditPage:
    events: list[AuditEvent]
    next_cursor: str | None


def parse_actions(text: str | None) -> tuple[str, ...]:
    """`"key.create,key.revoke"` -> both; empty means every action."""
    return tuple(dict.fromkeys(p.strip() for p in (text or "").split(",") if p.strip()))


def list_page(
    session: Session, *, workspace_id: uuid.UUID, actions: Sequence[str] = (), limit: int = 50,
    cursor: str | None = None,
) -> AuditPage:
    paging.check_limit(limit)
    before = paging.decode_at(cursor) if cursor else None
    events = workspace_repo.list_audit(session, workspace_id, limit=limit + 1,
                                       actions=actions, before=before)
    if len(events) <= limit:
        return AuditPage(events, None)
    events = events[:limit]
    return AuditPage(events, paging.encode_at(events[-1].at, events[-1].id))
