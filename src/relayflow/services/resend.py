"""Manual resend: a new attempt with the same rendered content, no run, actor and reason.
It goes out with the headers a run's message carries (one-click unsubscribe).

The request only queues the attempt (and its audit event) in one transaction; a worker
sends it. Claiming it (setting `send_started_at`) is the commit-before-send: a resend is
tried once, at most — a transient failure leaves it FAILED for the operator to resend
again, rather than retrying behind their back.

A message that cannot be sent as rendered (see delivery/envelope.py) is claimed and failed
in one transaction: it is never left half-started. A resend whose worker died while sending
(claimed longer ago than the provider deadline plus a lease, still QUEUED) is recovered by
the next worker as a run's send is: FAILED "outcome unknown" over SMTP, sent again with the
same Idempotency-Key over HTTP, simply sent through the outbox.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from relayflow.errors import Conflict, InvalidInput, NotFound
from relayflow.faults import crash_point
from relayflow.services import delivery as delivery_service
from relayflow.services import failures
from relayflow.services import frequency as frequency_service
from relayflow.services import unsubscribe as unsubscribe_service
from relayflow.services import workspace as workspace_service
from relayflow.services.runtime import Runtime
from relayflow.services.secret import WorkspaceSecrets
from relayflow.storage.db import read_scope, session_scope
from relayflow.storage.ids import new_id, parse_id
from relayflow.storage.models import DeliveryAttempt
from relayflow.storage.repositories import provider_config as provider_repo

log = logging.getLogger(__name__)

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


def send_queued(runtime: Runtime, *, limit: int = 20, lease_seconds: float = 30.0) -> int:
    """The worker's pass over manual resends, interrupted ones first; returns how many it
    handled. `lease_seconds` is the worker's lease: a claim older than the provider deadline
    plus that is one whose worker is gone."""
    handled = _recover(runtime, limit=limit, lease_seconds=lease_seconds)
    with read_scope(runtime.sessions) as session:
        queued = provider_repo.queued_resends(session, limit=limit)
    for attempt in queued:
        context, headers = _context(runtime, attempt), _headers(runtime, attempt)
        invalid = _refusal(attempt, context, headers)
        with session_scope(runtime.sessions) as session:
            claimed_at = provider_repo.start_sending(session, attempt.id)
            if claimed_at is None:
                continue  # another worker took it
            if invalid is not None:  # claimed and failed at once: never left half-started
                provider_repo.record(session, attempt.id, failures.name_attempt(
                    session, attempt, {"status": "FAILED", "error": invalid}, runtime.clock()))
        if invalid is None:
            _send_one(runtime, attempt, context, headers, claimed_at)
        handled += 1
    return handled


def _recover(runtime: Runtime, *, limit: int, lease_seconds: float) -> int:
    stale = runtime.provider_timeout_seconds + lease_seconds
    with read_scope(runtime.sessions) as session:
        interrupted = provider_repo.interrupted_resends(session, older_than_seconds=stale,
                                                        limit=limit)
    handled = 0
    for attempt in interrupted:
        assert attempt.send_started_at is not None
        context, headers = _context(runtime, attempt), _headers(runtime, attempt)
        # Nothing reached the provider for an invalid message; a resend that went over SMTP
        # (then or now) may have arrived, and SMTP cannot be asked: never sent twice.
        failed = _refusal(attempt, context, headers) or delivery_service.interrupted_outcome(
            attempt.provider) or delivery_service.interrupted_outcome(context.provider)
        with session_scope(runtime.sessions) as session:
            claimed_at = provider_repo.reclaim(session, attempt.id,
                                               previous=attempt.send_started_at)
            if claimed_at is None:
                continue
            if failed is not None:
                provider_repo.record(session, attempt.id, failures.name_attempt(
                    session, attempt, {"status": "FAILED", "error": failed}, runtime.clock()))
        log.warning("recovered an interrupted resend", extra={"attempt_id": str(attempt.id)})
        if failed is None:
            # The same attempt id, so the same Idempotency-Key: the provider drops a repeat.
            _send_one(runtime, attempt, context, headers, claimed_at)
        handled += 1
    return handled


def _context(runtime: Runtime, attempt: DeliveryAttempt) -> delivery_service.SendContext:
    return delivery_service.read_context(
        runtime, workspace_id=attempt.workspace_id, contact_id=attempt.contact_id,
        channel=attempt.channel)


def _headers(runtime: Runtime, attempt: DeliveryAttempt) -> dict[str, str]:
    """The headers a run's message carries (one-click unsubscribe), for this resend too."""
    urls = unsubscribe_service.urls_for(runtime, workspace_id=attempt.workspace_id,
                                        contact_id=attempt.contact_id)
    return unsubscribe_service.list_headers(urls, attempt.channel)


def _refusal(attempt: DeliveryAttempt, context: delivery_service.SendContext,
             headers: dict[str, str]) -> str | None:
    return delivery_service.refusal(channel=attempt.channel, to=attempt.recipient,
                                    subject=attempt.subject or "",
                                    headers=headers, context=context)


def _send_one(runtime: Runtime, attempt: DeliveryAttempt,
              context: delivery_service.SendContext, headers: dict[str, str],
              claimed_at: datetime) -> None:
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
            html=attempt.html, headers=headers, context=context, secrets=secrets,
            max_attempts=1, retry_base=timedelta(seconds=1))
        crash_point("after_effect")
        if isinstance(outcome, delivery_service.Sent):
            values = {"status": "SENT", "sent_at": runtime.clock(),
                      "provider_message_id": outcome.provider_message_id,
                      "provider_response": delivery_service.redact(outcome.response, secrets)}
        else:
            values = {"status": "FAILED",
                      "error": str(delivery_service.redact(outcome.error, secrets)),
                      "provider_response": delivery_service.redact(outcome.response, secrets)}
    with session_scope(runtime.sessions) as session:
        if values["status"] == "FAILED":
            values = failures.name_attempt(session, attempt, values, runtime.clock())
        # Fenced by the claim: a worker that took this send over as interrupted owns it now.
        if not provider_repo.record(session, attempt.id, values, claimed_at=claimed_at):
            log.warning("a resend's result arrived after another worker took it over",
                        extra={"attempt_id": str(attempt.id)})
