from __future__ import annotations

import typing
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Row, Select, func, or_, select, tuple_
from sqlalchemy.orm import Session, aliased

from relayflow.storage.dialect import not_indexed, utc_text, uuid_text
from relayflow.storage.models import (
    Contact,
    DeliveryAttempt,
    RunStep,
    Workflow,
    WorkflowRun,
    WorkflowVersion,
)
from relayflow.storage.repositories import rollup
from relayflow.storage.repositories.run import RunRow


def get_many(session: Session, ids: Sequence[uuid.UUID | None]) -> dict[uuid.UUID, DeliveryAttempt]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    query = select(DeliveryAttempt).where(DeliveryAttempt.id.in_(wanted))
    return {a.id: a for a in session.scalars(query)}


def get(session: Session, workspace_id: uuid.UUID, attempt_id: uuid.UUID) -> DeliveryAttempt | None:
    return session.scalar(select(DeliveryAttempt).where(
        DeliveryAttempt.workspace_id == workspace_id, DeliveryAttempt.id == attempt_id))


# --- delivery ops: listing, counts, chains ------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryFilter:
    workspace_id: uuid.UUID
    statuses: Sequence[str] = ()
    channel: str | None = None
    workflow_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    fingerprint: str | None = None  # failed or bounced attempts of one cause


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    attempt: DeliveryAttempt
    workflow_key: str | None
    contact_email: str | None
    contact_phone: str | None


def _filtered(query, f: DeliveryFilter):  # type: ignore[no-untyped-def]
    query = query.where(DeliveryAttempt.workspace_id == f.workspace_id)
    if f.statuses:
        query = query.where(DeliveryAttempt.status.in_(list(f.statuses)))
    if f.channel is not None:
        query = query.where(DeliveryAttempt.channel == f.channel)
    if f.workflow_id is not None:
        query = query.where(DeliveryAttempt.workflow_id == f.workflow_id)
    if f.contact_id is not None:
        query = query.where(DeliveryAttempt.contact_id == f.contact_id)
    if f.created_from is not None:
        query = query.where(DeliveryAttempt.created_at >= f.created_from)
    if f.created_to is not None:
        query = query.where(DeliveryAttempt.created_at < f.created_to)
    if f.fingerprint is not None:
        query = query.where(DeliveryAttempt.fingerprint == f.fingerprint)
    return query


def _rows() -> Select[DeliveryAttempt, str | None, str | None, str | None]:
    # The workflow and contact are matched within the attempt's own workspace, so a stray
    # id can never show another workspace's names.
    return (
        select(DeliveryAttempt, Workflow.key, Contact.email, Contact.phone)
        .outerjoin(Workflow, (Workflow.id == DeliveryAttempt.workflow_id)
                   & (Workflow.workspace_id == DeliveryAttempt.workspace_id))
        .outerjoin(Contact, (Contact.id == DeliveryAttempt.contact_id)
                   & (Contact.workspace_id == DeliveryAttempt.workspace_id))
    )


def _to_row(row: Row[DeliveryAttempt, str | None, str | None, str | None]) -> DeliveryRow:
    attempt, key, email, phone = row
    return DeliveryRow(attempt, key, email, phone)


def list_page(
    session: Session, f: DeliveryFilter, *, limit: int,
    before: tuple[datetime, uuid.UUID] | None = None,
) -> list[DeliveryRow]:
    """Newest first, keyset on (created_at, id), walking the (workspace[, status], created_at,
    id) indexes backwards from the cursor."""
    query = _filtered(_rows(), f)
    if before is not None:
        query = query.where(tuple_(DeliveryAttempt.created_at, DeliveryAttempt.id) < before)
    query = query.order_by(DeliveryAttempt.created_at.desc(), DeliveryAttempt.id.desc())
    return [_to_row(row) for row in session.execute(query.limit(limit))]


# id, run id, workflow key, recipient, channel, provider, status, attempt number, subject,
# error, suppressed by, provider message id, resend of, created at, sent at.
ExportRow = tuple[str, str | None, str | None, str, str, str, str, int, str, str | None,
                  str | None, str | None, str | None, str, str | None]


def export_page(session: Session, f: DeliveryFilter, *, limit: int,
                before: tuple[datetime, uuid.UUID] | None = None) -> Sequence[ExportRow]:
    """A page of `list_page`'s attempts as plain values (ExportRow), ids and times already
    text: only the columns an export shows (no body, no HTML, no provider response), and
    no object per row. The same indexes as `list_page`."""
    query = _filtered(select(
        uuid_text(DeliveryAttempt.id), uuid_text(DeliveryAttempt.run_id), Workflow.key,
        DeliveryAttempt.recipient, DeliveryAttempt.channel, DeliveryAttempt.provider,
        DeliveryAttempt.status, DeliveryAttempt.attempt_number, DeliveryAttempt.subject,
        DeliveryAttempt.error, DeliveryAttempt.suppressed_by,
        DeliveryAttempt.provider_message_id, uuid_text(DeliveryAttempt.resend_of),
        utc_text(DeliveryAttempt.created_at), utc_text(DeliveryAttempt.sent_at),
    ).outerjoin(Workflow, (Workflow.id == DeliveryAttempt.workflow_id)
                & (Workflow.workspace_id == DeliveryAttempt.workspace_id)), f)
    if before is not None:
        query = query.where(tuple_(DeliveryAttempt.created_at, DeliveryAttempt.id) < before)
    query = query.order_by(DeliveryAttempt.created_at.desc(), DeliveryAttempt.id.desc())
    # On the connection, not the session: the ORM adds nothing here but time per row.
    return typing.cast(Sequence[ExportRow],
                       session.connection().execute(query.limit(limit)).all())


def count_by_status(session: Session, f: DeliveryFilter) -> dict[str, int]:
    """Attempts by status under the filter: whole hours from the rollup (rollup.py), a
    contact's attempts and the hours a window starts or ends inside from the attempts."""
    equal: dict[str, object] = {}
    if f.workflow_id is not None:
        equal["workflow_id"] = f.workflow_id
    if f.channel is not None:
        equal["channel"] = f.channel
    return rollup.by_status(session, rollup.ATTEMPTS, f, equal,
                            lambda part: _count_by_status(session, part))


def _count_by_status(session: Session, f: DeliveryFilter) -> dict[str, int]:
    status = not_indexed(DeliveryAttempt.status)
    query = _filtered(select(status, func.count()), f).group_by(status)
    return {status: int(n) for status, n in session.execute(query)}


def get_row(session: Session, workspace_id: uuid.UUID, attempt_id: uuid.UUID) -> DeliveryRow | None:
    query = _rows().where(DeliveryAttempt.workspace_id == workspace_id,
                          DeliveryAttempt.id == attempt_id)
    found = session.execute(query).first()
    return _to_row(found) if found is not None else None


def get_with_run(session: Session, workspace_id: uuid.UUID, attempt_id: uuid.UUID
                 ) -> tuple[DeliveryRow, RunRow | None, RunStep | None] | None:
    """In one query: the attempt (as get_row), the run it belongs to in the workspace (as
    run.get_row; None without one, or when it was pruned) and the step that made it."""
    run_workflow, run_contact = aliased(Workflow), aliased(Contact)
    query = (
        select(DeliveryAttempt, Workflow.key, Contact.email, Contact.phone, WorkflowRun,
               run_workflow.key, WorkflowVersion.number, run_contact.email,
               run_contact.phone, RunStep)
        .outerjoin(Workflow, (Workflow.id == DeliveryAttempt.workflow_id)
                   & (Workflow.workspace_id == DeliveryAttempt.workspace_id))
        .outerjoin(Contact, (Contact.id == DeliveryAttempt.contact_id)
                   & (Contact.workspace_id == DeliveryAttempt.workspace_id))
        .outerjoin(WorkflowRun, (WorkflowRun.id == DeliveryAttempt.run_id)
                   & (WorkflowRun.workspace_id == DeliveryAttempt.workspace_id))
        .outerjoin(run_workflow, run_workflow.id == WorkflowRun.workflow_id)
        .outerjoin(WorkflowVersion, WorkflowVersion.id == WorkflowRun.version_id)
        .outerjoin(run_contact, run_contact.id == WorkflowRun.contact_id)
        .outerjoin(RunStep, (RunStep.run_id == WorkflowRun.id)
                   & (RunStep.seq == DeliveryAttempt.step_seq))
        .where(DeliveryAttempt.workspace_id == workspace_id, DeliveryAttempt.id == attempt_id)
    )
    found = session.execute(query).first()
    if found is None:
        return None
    attempt, key, email, phone, run, run_key, number, run_email, run_phone, step = found
    run_row = (RunRow(run, run_key, number, run_email, run_phone)
               if run is not None else None)
    return DeliveryRow(attempt, key, email, phone), run_row, step


def linked(
    session: Session, workspace_id: uuid.UUID, attempts: Sequence[DeliveryAttempt]
) -> list[DeliveryAttempt]:
    """Attempts one `retry_of` / `resend_of` link away from any of `attempts`, either way.

    One round of a walk rather than one recursive query: PostgreSQL plans a recursive join
    on these OR'ed links as a scan of every attempt, while each round's literal ids go
    through the primary key and the two partial link indexes."""
    ids = [a.id for a in attempts]
    parents = [p for a in attempts for p in (a.retry_of, a.resend_of) if p is not None]
    query = select(DeliveryAttempt).where(
        not_indexed(DeliveryAttempt.workspace_id) == workspace_id,
        or_(DeliveryAttempt.id.in_(parents), DeliveryAttempt.retry_of.in_(ids),
            DeliveryAttempt.resend_of.in_(ids)),
    )
    return list(session.scalars(query))


def list_page_newer(
    session: Session, f: DeliveryFilter, *, limit: int, after: tuple[datetime, uuid.UUID],
) -> list[DeliveryRow]:
    """The `limit` attempts just newer than `after`, newest first: the page before a cursor.

    Keyset like `list_page`, walking the same indexes forwards from the cursor (nearest
    first), so paging back towards the newest never counts past skipped rows."""
    query = _filtered(_rows(), f)
    query = query.where(tuple_(DeliveryAttempt.created_at, DeliveryAttempt.id) > after)
    query = query.order_by(DeliveryAttempt.created_at, DeliveryAttempt.id).limit(limit)
    return [_to_row(row) for row in reversed(session.execute(query).all())]
