"""Opening, listing, reading and canceling runs."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from relayflow.errors import Conflict, InvalidInput, NotFound
from relayflow.services import contact as contact_service
from relayflow.services import workflow as workflow_service
from relayflow.services import workspace as workspace_service
from relayflow.storage.ids import new_id, parse_id
from relayflow.storage.models import Contact, RunStep, Workflow, WorkflowRun
from relayflow.storage.notify import notify
from relayflow.storage.repositories import job as job_repo
from relayflow.storage.repositories import run as run_repo
from relayflow.storage.repositories import workflow as workflow_repo
from relayflow.storage.repositories.run import RunFilter, RunRow

STATUSES = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELED")
TERMINAL = ("COMPLETED", "FAILED", "CANCELED")
MAX_PAGE = 200


@dataclass(frozen=True, slots=True)
class Enrolled:
    run: WorkflowRun
    duplicate: bool


def new_run_rows(
    *, workspace_id: uuid.UUID, workflow_id: uuid.UUID, version_id: uuid.UUID,
    contact_id: uuid.UUID | None, trigger_type: str, event: dict[str, Any], now: datetime,
    idempotency_key: str | None = None, parent_run_id: uuid.UUID | None = None,
    retry_of: uuid.UUID | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The run, its trigger step (seq 0) and its job, as plain rows for bulk insert."""
    run_id = new_id()
    run = {
        "id": run_id, "workspace_id": workspace_id, "workflow_id": workflow_id,
        "version_id": version_id, "contact_id": contact_id, "trigger_type": trigger_type,
        "trigger_payload": event, "idempotency_key": idempotency_key, "duplicates_ignored": 0,
        "parent_run_id": parent_run_id, "retry_of": retry_of, "status": "PENDING",
        "created_at": now, "started_at": None, "finished_at": None, "current_node": None,
        "wake_at": None, "error": None,
    }
    output: dict[str, Any] = {"trigger": trigger_type}
    if parent_run_id is not None:
        output["parent_run_id"] = str(parent_run_id)
    if retry_of is not None:
        output["retry_of"] = str(retry_of)
    step = {
        "id": new_id(), "workspace_id": workspace_id, "run_id": run_id, "seq": 0,
        "node_id": "trigger", "node_type": "TRIGGER", "status": "COMPLETED", "started_at": now,
        "finished_at": now, "duration_ms": 0, "branch": None, "output": output, "request": None,
        "response": None, "delivery_attempt_id": None, "error": None,
    }
    job = {"run_id": run_id, "workspace_id": workspace_id, "due_at": now, "lease_owner": None,
           "lease_expires_at": None, "lease_token": 0, "claims": 0, "cancel_requested": False}
    return run, step, job


def enroll(
    session: Session, *, workflow: Workflow, contact: Contact | None, trigger_type: str,
    event: dict[str, Any], now: datetime, idempotency_key: str | None = None,
    parent_run_id: uuid.UUID | None = None, retry_of: uuid.UUID | None = None,
    version_id: uuid.UUID | None = None,
) -> Enrolled:
    """Open a PENDING run on the workflow's current version (or `version_id`)."""
    if workflow.status != "ACTIVE" and retry_of is None:
        raise Conflict(f"workflow {workflow.key!r} is {workflow.status}; activate it to start runs")
    if idempotency_key is not None:
        existing = run_repo.find_by_idempotency_key(session, workflow.id, idempotency_key)
        if existing is not None:
            run_repo.count_duplicate(session, existing.id)
            return Enrolled(existing, True)
    pinned = version_id or workflow.current_version_id
    assert pinned is not None
    run, step, job = new_run_rows(
        workspace_id=workflow.workspace_id, workflow_id=workflow.id, version_id=pinned,
        contact_id=contact.id if contact else None, trigger_type=trigger_type, event=event,
        now=now, idempotency_key=idempotency_key, parent_run_id=parent_run_id, retry_of=retry_of,
    )
    try:
        with session.begin_nested():
            session.execute(WorkflowRun.__table__.insert(), [run])
            session.execute(RunStep.__table__.insert(), [step])
            job_repo.add_many(session, [job])
        notify(session)
    except IntegrityError:
        # Another request with the same idempotency key won the race.
        existing = run_repo.find_by_idempotency_key(session, workflow.id, idempotency_key or "")
        if existing is None:
            raise
        run_repo.count_duplicate(session, existing.id)
        return Enrolled(existing, True)
    created = run_repo.get(session, workflow.workspace_id, run["id"])
    assert created is not None
    return Enrolled(created, False)


def trigger_manual(
    session: Session, *, workspace_id: uuid.UUID, workflow_key: str,
    contact: dict[str, Any] | None, event: dict[str, Any], now: datetime,
    idempotency_key: str | None = None,
) -> Enrolled:
    """Start a run by hand (API, UI, CLI), resolving or creating the contact when one is given."""
    workflow = workflow_service.get(session, workspace_id=workspace_id, key=workflow_key)
    found = (contact_service.resolve(session, workspace_id=workspace_id, spec=contact, now=now)
             if contact is not None else None)
    return enroll(session, workflow=workflow, contact=found, trigger_type="manual", event=event,
                  now=now, idempotency_key=idempotency_key)


def get(session: Session, *, workspace_id: uuid.UUID, run_id: str | uuid.UUID) -> WorkflowRun:
    parsed = run_id if isinstance(run_id, uuid.UUID) else parse_id(run_id)
    run = run_repo.get(session, workspace_id, parsed) if parsed else None
    if run is None:
        raise NotFound(f"no run {run_id!s} in this workspace")
    return run


def cancel(
    session: Session, *, workspace_id: uuid.UUID, run_id: str | uuid.UUID, actor: str,
    now: datetime, reason: str = "canceled by an operator", audit: bool = True,
) -> WorkflowRun:
    """Cancel at once when no worker holds the run (PENDING or parked at a WAIT); otherwise
    flag it, and the worker stops at the next step boundary."""
    run = get(session, workspace_id=workspace_id, run_id=run_id)
    job = job_repo.get_for_update(session, run.id)
    session.refresh(run)
    if run.status in TERMINAL:
        raise Conflict(f"run {run.id} is already {run.status}")
    held = job is not None and job.lease_expires_at is not None and job.lease_expires_at > now
    if held:
        assert job is not None
        job.cancel_requested = True
    else:
        finish_cancel(session, run=run, now=now, reason=reason)
    if audit:
        workspace_service.audit(session, workspace_id=workspace_id, actor=actor,
                                action="run.cancel", target_type="run", target_id=str(run.id),
                                now=now, detail={"reason": reason})
    return run


def finish_cancel(session: Session, *, run: WorkflowRun, now: datetime, reason: str) -> None:
    run.status = "CANCELED"
    run.finished_at = now
    run.wake_at = None
    run.error = None
    run_repo.cancel_open_steps(session, run.id, now)
    job_repo.remove(session, [run.id])


# --- listing ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunPage:
    rows: list[RunRow]
    next_cursor: str | None
    counts: dict[str, int] = field(default_factory=dict)


def encode_cursor(at: datetime, run_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{run_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, run_id = raw.partition("|")
        parsed = parse_id(run_id)
        if parsed is None:
            raise ValueError(run_id)
        return datetime.fromisoformat(at), parsed
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor is not valid; use next_cursor from a previous page") from exc


def list_page(
    session: Session, *, run_filter: RunFilter, limit: int, cursor: str | None
) -> RunPage:
    before = decode_cursor(cursor) if cursor else None
    rows = run_repo.list_page(session, run_filter, limit=limit + 1, before=before)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1].run
        next_cursor = encode_cursor(last.created_at, last.id)
    return RunPage(rows, next_cursor)


def parse_statuses(text: str | None) -> tuple[str, ...]:
    """`"running,failed"` -> `("RUNNING", "FAILED")`; empty means every status."""
    wanted = tuple(dict.fromkeys(p.strip().upper() for p in (text or "").split(",") if p.strip()))
    unknown = [s for s in wanted if s not in STATUSES]
    if unknown:
        raise InvalidInput(
            f"unknown run status {', '.join(unknown)}; use {', '.join(STATUSES)}"
        )
    return wanted


def build_filter(
    session: Session, *, workspace_id: uuid.UUID, status: str | None = None,
    workflow_key: str | None = None,
) -> RunFilter | None:
    """The filter for a run listing; None when it can match nothing (an unknown workflow)."""
    statuses = parse_statuses(status)
    workflow_id = None
    if workflow_key:
        workflow = workflow_repo.get_by_key(session, workspace_id, workflow_key)
        if workflow is None:
            return None
        workflow_id = workflow.id
    return RunFilter(workspace_id=workspace_id, statuses=statuses, workflow_id=workflow_id)


def search(
    session: Session, *, workspace_id: uuid.UUID, status: str | None = None,
    workflow_key: str | None = None, limit: int = 50, cursor: str | None = None,
) -> RunPage:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
    if cursor:
        decode_cursor(cursor)  # a bad cursor is an error even when the filter matches nothing
    run_filter = build_filter(session, workspace_id=workspace_id, status=status,
                              workflow_key=workflow_key)
    if run_filter is None:
        return RunPage([], None)
    return list_page(session, run_filter=run_filter, limit=limit, cursor=cursor)


def get_row(session: Session, *, workspace_id: uuid.UUID, run_id: str | uuid.UUID) -> RunRow:
    """A run with its workflow key, version number and contact address."""
    parsed = run_id if isinstance(run_id, uuid.UUID) else parse_id(run_id)
    row = run_repo.get_row(session, workspace_id, parsed) if parsed else None
    if row is None:
        raise NotFound(f"no run {run_id!s} in this workspace")
    return row


@dataclass(frozen=True, slots=True)
class Linked:
    row: RunRow
    relation: str  # "child" (started by this run) or "retry" (a retry of this run)


@dataclass(frozen=True, slots=True)
class Detail:
    row: RunRow
    steps: list[RunStep]
    linked: list[Linked]


def detail(session: Session, *, workspace_id: uuid.UUID, run_id: str | uuid.UUID) -> Detail:
    row = get_row(session, workspace_id=workspace_id, run_id=run_id)
    linked_runs = [
        Linked(r, "retry" if r.run.retry_of == row.run.id else "child")
        for r in run_repo.linked_rows(session, workspace_id, row.run.id)
    ]
    return Detail(row, run_repo.steps(session, row.run.id), linked_runs)


def steps(session: Session, run: WorkflowRun) -> list[RunStep]:
    return run_repo.steps(session, run.id)


def linked(session: Session, run: WorkflowRun) -> list[WorkflowRun]:
    return run_repo.linked(session, run.workspace_id, run.id)
