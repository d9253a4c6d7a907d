"""Manual resend: a new attempt with the same rendered content, no run, actor and reason.

The request only queues the attempt (and its audit event) in one transaction; a worker
sends it. Claiming it (setting `send_started_at`) is the commit-before-send: a resend is
tried once, at most — a transient failure leaves it FAILED for the operator to resend
again, rather than retrying behind their back.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from relayflow.errors import Conflict, InvalidInput, NotFound
from relayflow.services import delivery as delivery_service
from relayflow.services import frequency as frequency_service
from relayflow.services import workspace as workspace_service
from relayflow.services.runtime import Runtime
from relayflow.services.secret import WorkspaceSecrets
from relayflow.storage.db import session_scope
from relayflow.storage.ids import new_id, parse_id
from relayflow.storage.models import DeliveryAttempt
from relayflow.storage.repositories import provider_config as provider_repo

_COPIED = ("workspace_id", "workflow_id", "contact_id", "channel", "recipient", "subject",
           "body", "html")


def resend(session: Session, *, workspace_id: uuid.UUID, attempt_id: str, reason: str,
           override: bool, actor: str, now: datetime) -> DeliveryAttempt:
    parsed = parse_id(attempt_id)
    original = provider_repo.attempt(session, workspace_id, parsed) if parsed else None
    if original is None:
        raise NotFound(f"no delivery {attempt_id} in this workspace")
    if not reason.strip():
        raise InvalidInput("say why this message is sent again (reason)")
    if original.status == "QUEUED":
        raise Conflict("this attempt has not been sent yet")
    suppressed = (provider_repo.suppressed(session, original.contact_id)
                  .get(original.channel))
    if suppressed and not override:
        raise Conflict(f"the contact's {original.channel} is {suppressed}; send "
                       "`override: true` to resend anyway")
    config = provider_repo.config(session, workspace_id, original.channel)
    copy = DeliveryAttempt(
        id=new_id(), **{name: getattr(original, name) for name in _COPIED},
        provider=str((config or {}).get("type", "outbox")), status="QUEUED",
        attempt_number=1, resend_of=original.id, actor=actor, reason=reason.strip(),
        suppression_override=bool(override and suppressed), created_at=now)
    session.add(copy)
    session.flush()
    workspace_service.audit(session, workspace_id=workspace_id, actor=actor,
                            action="delivery.resend", target_type="delivery",
                            target_id=str(copy.id), now=now,
                            detail={"resend_of": str(original.id), "reason": copy.reason,
                                    "override": copy.suppression_override})
    return copy


def send_queued(runtime: Runtime, *, limit: int = 20) -> int:
    """The worker's pass over queued manual resends; returns how many it handled."""
    with session_scope(runtime.sessions) as session:
        queued = provider_repo.queued_resends(session, limit=limit)
    handled = 0
    for attempt in queued:
        with session_scope(runtime.sessions) as session:
            if not provider_repo.start_sending(session, attempt.id, runtime.clock()):
                continue  # another worker took it
        _send_one(runtime, attempt)
        handled += 1
    return handled


def _send_one(runtime: Runtime, attempt: DeliveryAttempt) -> None:
    context = delivery_service.read_context(
        runtime, workspace_id=attempt.workspace_id, contact_id=attempt.contact_id,
        channel=attempt.channel)
    values: dict[str, object]
    if context.suppressed_by and not attempt.suppression_override:
        values = {"status": "SUPPRESSED", "suppressed_by": context.suppressed_by,
                  "error": f"not sent: the contact's {attempt.channel} is "
                           f"{context.suppressed_by}"}
    else:
        # Counted against the contact's frequency cap, never refused by it: an operator
        # asked for this message explicitly.
        frequency_service.reserve(runtime, workspace_id=attempt.workspace_id,
                                  contact_id=attempt.contact_id, channel=attempt.channel,
                                  key=attempt.id, capped=False)
        secrets = WorkspaceSecrets(runtime.sessions, attempt.workspace_id, runtime.cipher)
        outcome = delivery_service.send(
            attempt_id=attempt.id, attempt_number=1, channel=attempt.channel,
            to=attempt.recipient, subject=attempt.subject, body=attempt.body,
            html=attempt.html, headers=None, context=context, secrets=secrets,
            max_attempts=1, retry_base=timedelta(seconds=1))
        if isinstance(outcome, delivery_service.Sent):
            values = {"status": "SENT", "sent_at": runtime.clock(),
                      "provider_message_id": outcome.provider_message_id,
                      "provider_response": delivery_service.redact(outcome.response, secrets)}
        else:
            values = {"status": "FAILED",
                      "error": str(delivery_service.redact(outcome.error, secrets)),
                      "provider_response": delivery_service.redact(outcome.response, secrets)}
    with session_scope(runtime.sessions) as session:
        provider_repo.record(session, attempt.id, values)
