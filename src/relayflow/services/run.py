"""Opening, listing, reading and canceling runs."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from relayflow.engine.status import CHIPS, TERMINAL, RunStatus
from relayflow.errors import Conflict, InvalidInput, NotFound
from relayflow.services import contact as contact_service
from relayflow.services import paging, trigger_events
from relayflow.services import search as search_service
from relayflow.services import workflow as workflow_service
from relayflow.services import workspace as workspace_service
from relayflow.services.canceler import canceler
from relayflow.storage.ids import new_id, parse_id
from relayflow.storage.models import Contact, DeliveryAttempt, RunStep, Workflow, WorkflowRun
from relayflow.storage.notify import notify
from relayflow.storage.repositories import contact as contact_repo
from relayflow.storage.repositories import job as job_repo
from relayflow.storage.repositories import run as run_repo
from relayflow.storage.repositories import workflow as workflow_repo
from relayflow.storage.repositories.run import RetryRef, RunFilter, RunRow
from relayflow.telemetry import metrics

STATUSES = tuple(RunStatus)
MAX_PAGE = paging.MAX_PAGE
RANGES = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


@dataclass(frozen=True, slots=True)
class Enrolled:
    run: WorkflowRun
    duplicate: bool


def new_run_rows(
    *, workspace_id: uuid.UUID, workflow_id: uuid.UUID, version_id: uuid.UUID,
    contact_id: uuid.UUID | None, trigger_type: str, event: dict[str, Any], now: datetime,
    idempotency_key: str | None = None, parent_run_id: uuid.UUID | None = None,
    retry_of: uuid.UUID | None = None, trigger_depth: int = 0, traceparent: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The run, its trigger step (seq 0) and its job, as plain rows for bulk insert."""
    run_id = new_id()
    run = {
        "id": run_id, "workspace_id": workspace_id, "workflow_id": workflow_id,
        "version_id": version_id, "contact_id": contact_id, "trigger_type": trigger_type,
        "trigger_payload": event, "idempotency_key": idempotency_key, "duplicates_ignored": 0,
        "parent_run_id": parent_run_id, "retry_of": retry_of, "status": "PENDING",
        "created_at": now, "started_at": None, "finished_at": None, "current_node": None,
        "wake_at": None, "error": None, "trigger_depth": trigger_depth,
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
           "lease_expires_at": None, "lease_token": 0, "claims": 0, "cancel_requested": False,
           "traceparent": traceparent}
    return run, step, job


def _require_active(workflow: Workflow) -> None:
    if workflow.status != "ACTIVE":
        raise Conflict(f"workflow {workflow.key!r} is {workflow.status}; activate it to start runs")


def duplicate(session: Session, existing: WorkflowRun, *, source: str,
              now: datetime) -> Enrolled:
    """The answer to a trigger whose idempotency key opened `existing` already: counted on
    the run, and recorded as a trigger event (services/trigger_events.py)."""
    run_repo.count_duplicate(session, existing.id)
    trigger_events.record(session, workspace_id=existing.workspace_id,
                          workflow_id=existing.workflow_id, contact_id=existing.contact_id,
                          source=source, code=trigger_events.DUPLICATE, run_id=existing.id,
                          now=now)
    return Enrolled(existing, True)


def enroll(
    session: Session, *, workflow: Workflow, contact: Contact | None, trigger_type: str,
    event: dict[str, Any], now: datetime, idempotency_key: str | None = None,
    parent_run_id: uuid.UUID | None = None, retry_of: uuid.UUID | None = None,
    version_id: uuid.UUID | None = None, trigger_depth: int = 0,
    traceparent: str | None = None,
) -> Enrolled:
    """Open a PENDING run on the workflow's current version (or `version_id`). The run
    returned is the row as inserted, not loaded back."""
    if retry_of is None:
        _require_active(workflow)
    if idempotency_key is not None:
        existing = run_repo.find_by_idempotency_key(session, workflow.id, idempotency_key)
        if existing is not None:
            return duplicate(session, existing, source=trigger_type, now=now)
    pinned = version_id or workflow.current_version_id
    assert pinned is not None
    run, step, job = new_run_rows(
        workspace_id=workflow.workspace_id, workflow_id=workflow.id, version_id=pinned,
        contact_id=contact.id if contact else None, trigger_type=trigger_type, event=event,
        now=now, idempotency_key=idempotency_key, parent_run_id=parent_run_id, retry_of=retry_of,
        trigger_depth=trigger_depth, traceparent=traceparent,
    )
    try:
        with session.begin_nested():
            run_repo.add_new(session, runs=[run], steps=[step])
            job_repo.add_many(session, [job])
        notify(session)
    except IntegrityError:
        # Another request with the same idempotency key won the race.
        existing = run_repo.find_by_idempotency_key(session, workflow.id, idempotency_key or "")
        if existing is None:
            raise
        return duplicate(session, existing, source=trigger_type, now=now)
    metrics.after_commit(session, partial(metrics.run_started, workflow.key, trigger_type))
    return Enrolled(WorkflowRun(**run), False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Opening:
    """One run `enroll_many` is asked to open."""

    workflow: Workflow
    contact: Contact | None
    event: dict[str, Any]
    idempotency_key: str | None
    now: datetime
    traceparent: str | None = None  # the span that asked for it (telemetry/tracing.py)


class KeyRepeated(Conflict):
    """Two runs of one batch under the same idempotency key: open them one at a time."""


def enroll_many(session: Session, openings: Sequence[Opening], *,
                trigger_type: str) -> list[Enrolled]:
    """`enroll` for many runs at once: their idempotency keys looked up in one query, the
    new runs, first steps and jobs inserted in one statement each. No savepoint: a key
    taken meanwhile by another transaction fails the insert, and a key given twice in the
    batch raises KeyRepeated, for the caller to start again one run at a time."""
    keys = [(o.workflow.id, o.idempotency_key) for o in openings if o.idempotency_key]
    if len(set(keys)) != len(keys):
        raise KeyRepeated("an idempotency key is given twice in the batch")
    existing = run_repo.find_by_idempotency_keys(session, keys)
    answers: list[Enrolled] = []
    runs, steps, jobs = [], [], []
    keys = {o.workflow.id: o.workflow.key for o in openings}
    for opening in openings:
        workflow = opening.workflow
        _require_active(workflow)
        found = existing.get((workflow.id, opening.idempotency_key or ""))
        if found is not None:
            answers.append(duplicate(session, found, source=trigger_type, now=opening.now))
            continue
        assert workflow.current_version_id is not None
        run, step, job = new_run_rows(
            workspace_id=workflow.workspace_id, workflow_id=workflow.id,
            version_id=workflow.current_version_id,
            contact_id=opening.contact.id if opening.contact else None,
            trigger_type=trigger_type, event=opening.event, now=opening.now,
            idempotency_key=opening.idempotency_key, traceparent=opening.traceparent)
        runs.append(run)
        steps.append(step)
        jobs.append(job)
        answers.append(Enrolled(WorkflowRun(**run), False))
    if runs:
        run_repo.add_new(session, runs=runs, steps=steps)
        job_repo.add_many(session, jobs)
        notify(session)
        batch = metrics.Batch()
        for opened in answers:
            if not opened.duplicate:
                batch.run_started(keys[opened.run.workflow_id], trigger_type)
        metrics.after_commit(session, batch.write)
    return answers


def trigger_manual(
    session: Session, *, workspace_id: uuid.UUID, workflow_key: str,
    contact: dict[str, Any] | None, event: dict[str, Any], now: datetime,
    idempotency_key: str | None = None, phone_region: str | None = None,
) -> Enrolled:
    """Start a run by hand (API, UI, CLI), resolving or creating the contact when one is given."""
    workflow = workflow_service.get(session, workspace_id=workspace_id, key=workflow_key)
    found = (contact_service.resolve(session, workspace_id=workspace_id, spec=contact, now=now,
                                     phone_region=phone_region)
             if contact is not None else None)
    return enroll(session, workflow=workflow, contact=found, trigger_type="manual", event=event,
                  now=now, idempotency_key=idempotency_key)


def get(session: Session, *, workspace_id: uuid.UUID, run_id: str | uuid.UUID) -> WorkflowRun:
    parsed = run_id if isinstance(run_id, uuid.UUID) else parse_id(run_id)
    run = run_repo.get(session, workspace_id, parsed) if parsed else None
    if run is None:
        raise NotFound(f"no run {run_id!s} in this workspace")
    return run


MAX_CANCEL_REASON = 1000


def cancel(
    session: Session, *, workspace_id: uuid.UUID, run_id: str | uuid.UUID, actor: str,
    now: datetime, reason: str = "canceled by an operator", audit: bool = True,
) -> WorkflowRun:
    """Cancel at once when no worker holds the run (PENDING or parked at a WAIT); otherwise
    flag it, and the worker stops at the next step boundary. Either way the run records
    who asked (`canceled_by`, see services.canceler) and why (`cancel_reason`; an empty
    reason is none) at once; of a run its worker has still to stop, the first to ask is
    the one kept."""
    if len(reason) > MAX_CANCEL_REASON:
        raise InvalidInput(f"a cancel reason is at most {MAX_CANCEL_REASON} characters")
    if "\x00" in reason:
        raise InvalidInput("a cancel reason must not contain NUL (\\u0000) characters")
    run = get(session, workspace_id=workspace_id, run_id=run_id)
    job = job_repo.get_for_update(session, run.id)
    session.refresh(run)
    if run.status in TERMINAL:
        raise Conflict(f"run {run.id} is already {run.status}")
    if run.canceled_by is None:
        run.canceled_by = canceler(actor)
        run.cancel_reason = reason.strip() or None
    # By the database's clock, as workers judge leases: this process's clock may be off.
    held = job is not None and job_repo.held(session, run.id)
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
    workflow = workflow_repo.get(session, run.workflow_id)
    metrics.after_commit(session, partial(
        metrics.run_finished, workflow.key if workflow else "", "CANCELED",
        (now - run.created_at).total_seconds()))


RETRY_VERSIONS = ("original", "current")


def retry(
    session: Session, *, workspace_id: uuid.UUID, run_id: str | uuid.UUID, actor: str,
    now: datetime, version: str = "original", idempotency_key: str | None = None,
    audit: bool = True,
) -> WorkflowRun:
    """A new run for the same contact and payload, linked to the original by `retry_of`,
    on the original's version or on the workflow's `current` one (a fix saved since).
    Only a finished run can be retried (retrying an in-flight one would walk the same
    contact twice at once).

    A deactivated workflow still accepts retries: activation decides whether triggers
    start runs, and a retry is an operator's explicit choice for one run."""
    if version not in RETRY_VERSIONS:
        raise InvalidInput(f"version must be one of {', '.join(RETRY_VERSIONS)}")
    original = get(session, workspace_id=workspace_id, run_id=run_id)
    if original.status not in TERMINAL:
        raise Conflict(f"run {original.id} is {original.status}; only a COMPLETED, FAILED or "
                       "CANCELED run can be retried (cancel it first)")
    workflow = workflow_repo.get(session, original.workflow_id)
    assert workflow is not None  # the foreign key guarantees it
    contact = (contact_repo.get(session, workspace_id, original.contact_id)
               if original.contact_id else None)
    enrolled = enroll(session, workflow=workflow, contact=contact, trigger_type="retry",
                      event=dict(original.trigger_payload or {}), now=now,
                      retry_of=original.id, idempotency_key=idempotency_key,
                      version_id=(original.version_id if version == "original"
                                  else workflow.current_version_id),
                      # A retry stands where the original stood in its chain of upstream
                      # triggers, so retrying a run at the depth cap cannot start it over.
                      trigger_depth=original.trigger_depth)
    if audit:  # a bulk operation audits itself once, not each of its runs
        workspace_service.audit(session, workspace_id=workspace_id, actor=actor,
                                action="run.retry", target_type="run",
                                target_id=str(original.id), now=now,
                                detail={"retry_run_id": str(enrolled.run.id),
                                        "version": version})
    return enrolled.run


# --- listing ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunPage:
    rows: list[RunRow]
    next_cursor: str | None
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunQuery:
    """What GET /runs asks for, as typed by a person: every field optional."""

    status: str | None = None
    workflow: str | None = None
    contact: str | None = None
    range: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    fingerprint: str | None = None
    q: str | None = None  # a search (services/search.py)


_FINGERPRINT = re.compile(r"[0-9a-f]{16}")


def parse_fingerprint(text: str | None) -> str | None:
    if not text:
        return None
    if not _FINGERPRINT.fullmatch(text.strip().lower()):
        raise InvalidInput("fingerprint must be 16 hexadecimal digits, as /failures gives it")
    return text.strip().lower()


def encode_cursor(at: datetime, run_id: uuid.UUID) -> str:
    return paging.encode_at(at, run_id)


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    return paging.decode_at(cursor)


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
    rows = run_repo.with_latest_retries(session, run_filter.workspace_id, rows)
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


def _utc(value: datetime, name: str) -> datetime:
    """A naive time is UTC; an aware one is converted to UTC."""
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidInput(f"{name} is out of range") from exc


def time_window(
    *, range_: str | None, created_from: datetime | None, created_to: datetime | None,
    now: datetime,
) -> tuple[datetime | None, datetime | None]:
    """`range` (24h, 7d, 30d back from now) or `from`/`to`; `from` counts, `to` does not."""
    if range_:
        if created_from is not None or created_to is not None:
            raise InvalidInput("give either range or from/to, not both")
        if range_ not in RANGES:
            raise InvalidInput(f"range must be one of {', '.join(RANGES)}")
        return now - RANGES[range_], None
    start = _utc(created_from, "from") if created_from is not None else None
    end = _utc(created_to, "to") if created_to is not None else None
    if start is not None and end is not None and start > end:
        raise InvalidInput("from must not be later than to")
    return start, end


def build_filter(
    session: Session, *, workspace_id: uuid.UUID, query: RunQuery, now: datetime,
    phone_region: str | None = None,
) -> RunFilter | None:
    """The filter for a run listing; None when it can match nothing (an unknown workflow,
    an address no contact has). Malformed input is an error even then."""
    statuses = parse_statuses(query.status)
    fingerprint = parse_fingerprint(query.fingerprint)
    search = search_service.parse(query.q)
    start, end = time_window(range_=query.range, created_from=query.created_from,
                             created_to=query.created_to, now=now)
    scope = resolve_scope(session, workspace_id=workspace_id, contact=query.contact,
                          workflow=query.workflow, phone_region=phone_region)
    if scope is None:
        return None
    return RunFilter(workspace_id=workspace_id, statuses=statuses, workflow_id=scope.workflow_id,
                     contact_id=scope.contact_id, created_from=start, created_to=end,
                     fingerprint=fingerprint, search=search)


@dataclass(frozen=True, slots=True)
class Scope:
    contact_id: uuid.UUID | None
    workflow_id: uuid.UUID | None


def resolve_scope(
    session: Session, *, workspace_id: uuid.UUID, contact: str | None, workflow: str | None,
    phone_region: str | None,
) -> Scope | None:
    """The contact (id, email or phone) and workflow (key) a listing is filtered by; None
    when either names nothing, so the listing is empty. A malformed address is an error."""
    contact_id = None
    if contact and contact.strip():
        contact_id = parse_id(contact.strip())
        if contact_id is None:
            found = contact_service.find_by_address(
                session, workspace_id=workspace_id, address=contact, phone_region=phone_region)
            if found is None:
                return None
            contact_id = found.id
    workflow_id = None
    if workflow:
        found_workflow = workflow_repo.get_by_key(session, workspace_id, workflow)
        if found_workflow is None:
            return None
        workflow_id = found_workflow.id
    return Scope(contact_id, workflow_id)


def chip_counts(session: Session, run_filter: RunFilter | None) -> dict[str, int]:
    """`{ALL, RUNNING, COMPLETED, FAILED, CANCELED}` under every filter but the status."""
    by_status = ({} if run_filter is None else
                 run_repo.count_by_status(session, replace(run_filter, statuses=())))
    counts = {"ALL": sum(by_status.values())}
    for chip, statuses in CHIPS.items():
        counts[chip] = sum(by_status.get(s, 0) for s in statuses)
    return counts


def search(
    session: Session, *, workspace_id: uuid.UUID, query: RunQuery | None = None,
    limit: int = 50, cursor: str | None = None, now: datetime,
    phone_region: str | None = None,
) -> RunPage:
    """One page of runs, newest first, with the status chip counts."""
    paging.check_limit(limit)
    if cursor:
        decode_cursor(cursor)  # a bad cursor is an error even when the filter matches nothing
    run_filter = build_filter(session, workspace_id=workspace_id, query=query or RunQuery(),
                              now=now, phone_region=phone_region)
    counts = chip_counts(session, run_filter)
    if run_filter is None:
        return RunPage([], None, counts)
    page = list_page(session, run_filter=run_filter, limit=limit, cursor=cursor)
    return replace(page, counts=counts)


def get_row(session: Session, *, workspace_id: uuid.UUID, run_id: str | uuid.UUID) -> RunRow:
    """A run with its workflow key, version number, contact address and newest retry."""
    parsed = run_id if isinstance(run_id, uuid.UUID) else parse_id(run_id)
    row = run_repo.get_row(session, workspace_id, parsed) if parsed else None
    if row is None:
        raise NotFound(f"no run {run_id!s} in this workspace")
    return run_repo.with_latest_retries(session, workspace_id, [row])[0]


@dataclass(frozen=True, slots=True)
class Linked:
    row: RunRow
    relation: str  # "child" (started by this run) or "retry" (a retry of this run)


@dataclass(frozen=True, slots=True)
class Detail:
    row: RunRow
    steps: list[RunStep]
    linked: list[Linked]
    parent: RunRow | None = None  # the run whose TRIGGER_WORKFLOW started this one
    original: RunRow | None = None  # the run this one retries
    # Every delivery attempt of each SEND_MESSAGE step (by seq), oldest first.
    attempts: dict[int, list[DeliveryAttempt]] = field(default_factory=dict)


def detail(session: Session, *, workspace_id: uuid.UUID, run_id: str | uuid.UUID) -> Detail:
    """A run with its steps and its links both ways: the runs it started or that retry it,
    and the run that started it or that it retries (None when that run was pruned). Two
    queries, whatever the run: its family of runs, and its steps with their attempts."""
    parsed = run_id if isinstance(run_id, uuid.UUID) else parse_id(run_id)
    family = run_repo.family_rows(session, workspace_id, parsed) if parsed else []
    rows = {r.run.id: r for r in family}
    row = rows.get(parsed) if parsed else None
    if row is None:
        raise NotFound(f"no run {run_id!s} in this workspace")
    run = row.run
    linked_runs = [Linked(r, "retry" if r.run.retry_of == run.id else "child")
                   for r in family if run.id in (r.run.parent_run_id, r.run.retry_of)]
    retries = [link.row.run for link in linked_runs if link.relation == "retry"]
    if retries:  # the family is oldest first
        row = replace(row, latest_retry=RetryRef(retries[-1].id, retries[-1].status))
    steps: list[RunStep] = []
    attempts: dict[int, list[DeliveryAttempt]] = {}
    for step, attempt in run_repo.steps_with_attempts(session, workspace_id, run.id):
        if not steps or steps[-1].id != step.id:
            steps.append(step)
        if attempt is not None:
            attempts.setdefault(step.seq, []).append(attempt)
    return Detail(
        row, steps, linked_runs,
        parent=rows.get(run.parent_run_id) if run.parent_run_id else None,
        original=rows.get(run.retry_of) if run.retry_of else None,
        attempts=attempts,
    )


def waiting(run: WorkflowRun) -> tuple[str, datetime] | None:
    """(WAIT node, wake-up time) while a RUNNING run is parked; None otherwise."""
    if run.status == "RUNNING" and run.wake_at is not None and run.current_node:
        return run.current_node, run.wake_at
    return None
