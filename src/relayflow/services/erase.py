"""Erase a contact (the right to erasure): its personal data goes from every table, while
what happened stays countable. The contact row stays as a tombstone (no identifiers, no
attributes, `erased_at`), so its runs and messages keep their statuses and the counts
and charts do not move.

What goes, for the contact and everything made for it:
- the contact's email, phone, external id and attributes;
- its runs' trigger payloads, captured fields, errors and idempotency keys (a key may be an
  address), and so their words in the search index;
- their steps' outputs, requests, responses and errors;
- its messages' recipients, subjects, bodies, provider answers, errors and resend reasons;
- the details of the audit events about it and its runs, bulk operations' filters that
  named it, and any cause of failure whose sample error quoted it.
Texts that quoted the contact elsewhere (an error, a sample) keep their other words, with
each identifier replaced by `[erased]`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, or_, select, update
from sqlalchemy.orm import Session

from relayflow.errors import Conflict, InvalidInput
from relayflow.services import audit as audit_service
from relayflow.services import contact as contact_service
from relayflow.storage.models import (
    AuditEvent,
    BulkOperation,
    DeliveryAttempt,
    FailureGroup,
    RunKey,
    RunStep,
    WorkflowRun,
)

ERASED = "[erased]"
MAX_REASON = 500
_BATCH = 500  # ids per IN list


@dataclass(frozen=True, slots=True)
class Erased:
    contact_id: uuid.UUID
    runs: int
    attempts: int


def scrub(value: Any, needles: Sequence[str]) -> Any:
    """`value` with every needle, in every string it holds (keys too), replaced."""
    if isinstance(value, str):
        for needle in needles:
            if needle and needle in value:
                value = value.replace(needle, ERASED)
        return value
    if isinstance(value, dict):
        return {scrub(k, needles): scrub(v, needles) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, needles) for v in value]
    return value


def _chunks(ids: Sequence[uuid.UUID]) -> list[Sequence[uuid.UUID]]:
    return [ids[i:i + _BATCH] for i in range(0, len(ids), _BATCH)]


def erase(session: Session, *, workspace_id: uuid.UUID, contact_id: str, reason: str,
          actor: str, now: datetime) -> Erased:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("reason is required: say why the contact is erased")
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"reason is at most {MAX_REASON} characters")
    contact = contact_service.get(session, workspace_id=workspace_id, contact_id=contact_id)
    if contact.erased_at is not None:
        raise Conflict("This contact was erased already.")
    needles = sorted({v for v in (contact.email, contact.phone, contact.external_id) if v},
                     key=len, reverse=True)
    run_ids = list(session.scalars(select(WorkflowRun.id).where(
        WorkflowRun.workspace_id == workspace_id, WorkflowRun.contact_id == contact.id)))
    for ids in _chunks(run_ids):
        _runs(session, ids, needles)
    attempts = session.execute(select(DeliveryAttempt.id, DeliveryAttempt.error,
                                      DeliveryAttempt.reason).where(
        DeliveryAttempt.workspace_id == workspace_id,
        DeliveryAttempt.contact_id == contact.id)).all()
    for attempt_id, error, why in attempts:
        session.execute(update(DeliveryAttempt).where(DeliveryAttempt.id == attempt_id).values(
            recipient=ERASED, subject="", body="", html=None, provider_response={},
            error=scrub(error, needles), reason=scrub(why, needles))
            .execution_options(synchronize_session=False))
    # The audit events about the contact or its runs, and any other that quotes it (a bulk
    # operation's filter, a reason typed by hand).
    targets = [str(contact.id), *(str(r) for r in run_ids)]
    for event in session.scalars(select(AuditEvent).where(
            AuditEvent.workspace_id == workspace_id,
            or_(*(AuditEvent.target_id.in_(chunk) for chunk in
                  (targets[i:i + _BATCH] for i in range(0, len(targets), _BATCH))),
                *(cast(AuditEvent.detail, Text).contains(needle, autoescape=True)
                  for needle in needles)))):
        event.detail = scrub(event.detail, needles)
    for operation in session.scalars(select(BulkOperation).where(
            BulkOperation.workspace_id == workspace_id)):
        scrubbed, why = scrub(operation.filter, needles), scrub(operation.reason, needles)
        if (scrubbed, why) != (operation.filter, operation.reason):
            operation.filter, operation.reason = scrubbed, why
    for group in session.scalars(select(FailureGroup).where(
            FailureGroup.workspace_id == workspace_id)):
        sample = scrub(group.sample_error, needles)
        if sample != group.sample_error:
            group.sample_error = sample
    contact.email = contact.phone = contact.external_id = None
    contact.attributes = {}
    contact.erased_at = contact.updated_at = now
    audit_service.record(session, workspace_id=workspace_id, actor=actor,
                         action="contact.erase", target_type="contact",
                         target_id=str(contact.id), now=now,
                         detail={"reason": scrub(reason, needles), "runs": len(run_ids),
                                 "attempts": len(attempts)})
    return Erased(contact.id, len(run_ids), len(attempts))


def _runs(session: Session, run_ids: Sequence[uuid.UUID], needles: Sequence[str]) -> None:
    for run_id, error, why in session.execute(
            select(WorkflowRun.id, WorkflowRun.error, WorkflowRun.cancel_reason)
            .where(WorkflowRun.id.in_(run_ids))).all():
        session.execute(update(WorkflowRun).where(WorkflowRun.id == run_id).values(
            trigger_payload={}, captured=None, error=scrub(error, needles),
            idempotency_key=None, cancel_reason=scrub(why, needles))
            .execution_options(synchronize_session=False))
    session.execute(RunKey.__table__.delete().where(RunKey.run_id.in_(run_ids)))
    session.execute(update(RunStep).where(RunStep.run_id.in_(run_ids))
                    .values(output={}, request=None, response=None)
                    .execution_options(synchronize_session=False))
    for run_id, seq, error in session.execute(
            select(RunStep.run_id, RunStep.seq, RunStep.error).where(
                RunStep.run_id.in_(run_ids), RunStep.error.is_not(None))).all():
        session.execute(update(RunStep).where(RunStep.run_id == run_id, RunStep.seq == seq)
                        .values(error=scrub(error, needles))
                        .execution_options(synchronize_session=False))
