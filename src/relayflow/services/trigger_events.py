"""Triggers that opened no run of their own (DESIGN §8.3): a webhook request refused, a
workflow that was not ACTIVE, a duplicate of a trigger that did open one. Each is recorded
by the code that decides it, with a reason code, so "why not?" reads what happened rather
than guessing it. What the request carried is never kept: only the contact it named, when
that contact is known here.

The codes (docs/runs.md lists them with the rest):
- `trigger_rejected`, with its `cause`: `signature` (missing, malformed, stale or wrong;
  or no signing secret to check it with), `replay` (a signed request sent again under
  another key), `rate_limit`, `invalid_payload` (not a JSON object, an unusable contact);
- `workflow_inactive`: the workflow was DRAFT or PAUSED;
- `duplicate_trigger`: its idempotency key had opened a run already (`run_id`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from relayflow.errors import RelayflowError
from relayflow.storage.models import TriggerEvent

REJECTED, INACTIVE, DUPLICATE = "trigger_rejected", "workflow_inactive", "duplicate_trigger"
CAUSES = ("signature", "replay", "rate_limit", "invalid_payload")
# A refusal of the request's own content, whichever check made it.
_INVALID = {400, 413, 422}


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str
    cause: str | None


def refusal_of(error: RelayflowError) -> Refusal | None:
    """What a trigger's refusal records, from the reason its decision gave (errors'
    `because`); None for an error that refuses no trigger (an unknown webhook address)."""
    reason = error.reason
    if reason is None and error.status_code in _INVALID:
        reason = "invalid_payload"
    if reason == INACTIVE:
        return Refusal(INACTIVE, None)
    if reason in CAUSES:
        return Refusal(REJECTED, reason)
    return None


_SAYS = {
    ("trigger_rejected", "signature"): "refused: its signature did not verify",
    ("trigger_rejected", "replay"): "refused: a signed request sent again under a new key",
    ("trigger_rejected", "rate_limit"): "refused: over the webhook's rate limit",
    ("trigger_rejected", "invalid_payload"): "refused: its payload could not be used",
    ("workflow_inactive", None): "refused: the workflow was not active",
    ("duplicate_trigger", None): "a duplicate: answered with the run its key opened",
}


def says(event: TriggerEvent) -> str:
    """The event in a few words, for a person."""
    return _SAYS.get((event.code, event.cause), event.code.replace("_", " "))


def record(session: Session, *, workspace_id: uuid.UUID, workflow_id: uuid.UUID,
           contact_id: uuid.UUID | None, source: str, code: str, cause: str | None = None,
           run_id: uuid.UUID | None = None, now: datetime) -> None:
    session.add(TriggerEvent(workspace_id=workspace_id, workflow_id=workflow_id,
                             contact_id=contact_id, source=source, code=code, cause=cause,
                             run_id=run_id, at=now))


def of_contact(session: Session, *, workspace_id: uuid.UUID, contact_id: uuid.UUID,
               workflow_ids: Sequence[uuid.UUID] | None = None, start: datetime | None = None,
               end: datetime | None = None, limit: int = 100) -> list[TriggerEvent]:
    """A contact's trigger events, newest first (of some workflows, in a window)."""
    query = select(TriggerEvent).where(TriggerEvent.workspace_id == workspace_id,
                                       TriggerEvent.contact_id == contact_id)
    if workflow_ids is not None:
        query = query.where(TriggerEvent.workflow_id.in_(list(workflow_ids)))
    if start is not None:
        query = query.where(TriggerEvent.at >= start)
    if end is not None:
        query = query.where(TriggerEvent.at < end)
    return list(session.scalars(query.order_by(TriggerEvent.at.desc(), TriggerEvent.id.desc())
                                .limit(limit)))
