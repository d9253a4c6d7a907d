"""Bulk operations (DESIGN §8.2): retry or cancel every run a filter matches.

What acting would do is shown first (`preview`: the exact count, a sample, how many runs
would be skipped and why, and how many messages and requests the retried paths may make
again). Made (`create`), an operation freezes its set: one bulk_items row per run
matched at that moment, inserted by the database from the filter itself.

Workers then act on the items a few at a time (`advance`), at most `rate` runs a second
counted from the operation's start. One worker at a time holds an operation (a lease
that runs out if it dies). Each item leaves PENDING in the same transaction that retries
or cancels its run, and only if it was still PENDING: a run is acted on at most once per
operation whatever process is killed when, and an item whose transaction was lost is
still PENDING, so the operation finishes after a restart. A retry also carries the
idempotency key `bulk:<operation>:<run>`, so even a second operation over the same
frozen row could not open it twice.

A run already retried successfully (or with a retry still going) is skipped with that
reason; so is a run retention removed, or one already finished (cancel) or not yet
finished (retry).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, literal, select, update
from sqlalchemy.orm import Session, aliased

from relayflow.engine.graph import WorkflowGraph
from relayflow.engine.status import TERMINAL
from relayflow.errors import Conflict, InvalidInput, NotFound, RelayflowError
from relayflow.faults import crash_point
from relayflow.services import run as run_service
from relayflow.services import search as search_service
from relayflow.services import workspace as workspace_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import read_scope, session_scope
from relayflow.storage.ids import new_id, parse_id
from relayflow.storage.models import (
    BulkItem,
    BulkOperation,
    Workflow,
    WorkflowRun,
    WorkflowVersion,
)
from relayflow.storage.repositories import run as run_repo
from relayflow.storage.repositories.run import RunFilter, RunRow

ACTIONS = ("retry", "cancel")
FILTER_FIELDS = ("status", "workflow", "contact", "range", "from", "to", "fingerprint",
                 "q", "ids")
MAX_RUNS = 100_000  # runs in one operation
MAX_IDS = 10_000
MAX_REASON = 2000
SAMPLE = 20
DEFAULT_RATE = 50.0  # runs a second
BATCH = 10  # items acted on in one transaction
PER_CALL = 50  # items one `advance` acts on at most, however far behind its pace
LEASE_SECONDS = 30.0
OPEN = "RUNNING"
_DONE_RETRY = "COMPLETED"


# --- what is asked ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spec:
    """A checked request: the action, and the filter both as given (shown, audited) and
    as a run query."""

    action: str
    version: str | None
    reason: str
    filter: dict[str, Any]
    query: run_service.RunQuery
    ids: tuple[uuid.UUID, ...] | None


def _text(value: Any, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"filter.{name} must be text")
    return value.strip() or None


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"filter.{name} is not an ISO 8601 date and time: {value!r}") \
            from None


def _ids(value: Any) -> tuple[uuid.UUID, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise InvalidInput("filter.ids must be a list of run ids")
    if len(value) > MAX_IDS:
        raise InvalidInput(f"filter.ids holds at most {MAX_IDS:,} run ids")
    parsed = []
    for item in value:
        run_id = parse_id(item) if isinstance(item, str) else None
        if run_id is None:
            raise InvalidInput(f"filter.ids: {str(item)[:60]!r} is not a run id")
        parsed.append(run_id)
    return tuple(dict.fromkeys(parsed))


def spec(*, action: str, filter: Mapping[str, Any] | None, version: str | None = None,
         reason: str | None = None) -> Spec:
    """The request checked, every mistake a clear error."""
    if action not in ACTIONS:
        raise InvalidInput(f"action must be one of {', '.join(ACTIONS)}")
    if action == "cancel" and version is not None:
        raise InvalidInput("version is for retries: a cancel has none")
    version = (version or "original") if action == "retry" else None
    if version is not None and version not in run_service.RETRY_VERSIONS:
        raise InvalidInput(f"version must be one of {', '.join(run_service.RETRY_VERSIONS)}")
    if filter is None or not isinstance(filter, Mapping):
        raise InvalidInput("filter must be an object: give at least one of "
                           + ", ".join(FILTER_FIELDS))
    unknown = sorted(set(filter) - set(FILTER_FIELDS))
    if unknown:
        raise InvalidInput(f"unknown filter field {unknown[0]!r}; use "
                           + ", ".join(FILTER_FIELDS))
    given = {k: v for k, v in filter.items() if v not in (None, "", [])}
    if not given:
        raise InvalidInput("give at least one filter (" + ", ".join(FILTER_FIELDS[:-2])
                           + " or ids): a bulk operation never acts on every run by default")
    reason = (reason or "").strip()
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"reason holds at most {MAX_REASON} characters")
    query = run_service.RunQuery(
        status=_text(given.get("status"), "status"),
        workflow=_text(given.get("workflow"), "workflow"),
        contact=_text(given.get("contact"), "contact"),
        range=_text(given.get("range"), "range"),
        created_from=_when(_text(given.get("from"), "from"), "from"),
        created_to=_when(_text(given.get("to"), "to"), "to"),
        fingerprint=_text(given.get("fingerprint"), "fingerprint"),
        q=_text(given.get("q"), "q"))
    search_service.parse(query.q)  # a bad search is refused before anything is counted
    return Spec(action, version, reason, given, query, _ids(given.get("ids")))


def _run_filter(session: Session, workspace_id: uuid.UUID, request: Spec, now: datetime,
                phone_region: str | None) -> RunFilter | None:
    found = run_service.build_filter(session, workspace_id=workspace_id, query=request.query,
                                     now=now, phone_region=phone_region)
    return None if found is None else replace(found, ids=request.ids)


# --- the dry run ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Effects:
    """What the retried paths may do again, at most: messages sent, requests made."""

    messages: int = 0
    integrations: int = 0
    loops: bool = False  # a path loops through a WAIT: each pass may do it again


@dataclass(frozen=True, slots=True)
class Preview:
    count: int
    sample: list[RunRow]
    skipped: dict[str, int]  # reason -> runs
    effects: Effects
    too_many: bool = False

    @property
    def acting(self) -> int:
        return self.count - sum(self.skipped.values())


def preview(session: Session, *, workspace_id: uuid.UUID, request: Spec, now: datetime,
            phone_region: str | None = None) -> Preview:
    """What the operation would do now; nothing is written."""
    run_filter = _run_filter(session, workspace_id, request, now, phone_region)
    if run_filter is None:
        return Preview(0, [], {}, Effects())
    chosen = run_repo.matching(run_filter).subquery()
    count = int(session.scalar(select(func.count()).select_from(chosen)) or 0)
    sample = run_repo.list_page(session, run_filter, limit=SAMPLE)
    run = aliased(WorkflowRun)
    scoped = select(run).where(run.id.in_(select(chosen.c.id))).subquery()
    skipped = _skips(session, request.action, scoped)
    effects = (_effects(session, scoped, request.version or "original")
               if request.action == "retry" else Effects())
    return Preview(count, sample, skipped, effects, too_many=count > MAX_RUNS)


def _skips(session: Session, action: str, runs: Any) -> dict[str, int]:
    """How many of `runs` acting would skip, by reason (the reasons `_act` gives)."""
    status = runs.c.status
    if action == "cancel":
        rows = session.execute(select(status, func.count()).where(status.in_(TERMINAL))
                               .group_by(status))
        return {f"already {s}": int(n) for s, n in rows}
    skipped: dict[str, int] = {}
    unfinished = int(session.scalar(select(func.count()).where(status.not_in(TERMINAL))) or 0)
    if unfinished:
        skipped["not finished yet"] = unfinished
    retry = aliased(WorkflowRun)
    for label, statuses in (("already retried successfully", (_DONE_RETRY,)),
                            ("a retry is still going", ("PENDING", "RUNNING"))):
        has = select(retry.id).where(retry.retry_of == runs.c.id,
                                     retry.status.in_(statuses)).exists()
        n = int(session.scalar(select(func.count()).where(status.in_(TERMINAL), has)) or 0)
        if n:
            skipped[label] = n
    return skipped


def _effects(session: Session, runs: Any, version: str) -> Effects:
    """For each version the retries would run: its runs times the most messages and
    requests one path through its graph holds."""
    finished = runs.c.status.in_(TERMINAL)
    if version == "original":
        counted = session.execute(select(runs.c.version_id, func.count()).where(finished)
                                  .group_by(runs.c.version_id)).all()
    else:
        counted = session.execute(
            select(Workflow.current_version_id, func.count()).select_from(runs)
            .join(Workflow, Workflow.id == runs.c.workflow_id).where(finished)
            .group_by(Workflow.current_version_id)).all()
    wanted = {v: int(n) for v, n in counted if v is not None}
    if not wanted:
        return Effects()
    definitions: dict[uuid.UUID, dict[str, Any]] = dict(session.execute(
        select(WorkflowVersion.id, WorkflowVersion.definition)
        .where(WorkflowVersion.id.in_(list(wanted)))).all())
    messages = integrations = 0
    loops = False
    for version_id, n in wanted.items():
        most = path_effects(definitions[version_id])
        messages += n * most.messages
        integrations += n * most.integrations
        loops = loops or most.loops
    return Effects(messages, integrations, loops)


def path_effects(definition: Mapping[str, Any]) -> Effects:
    """The most SEND_MESSAGE and INTEGRATION nodes on one path from the start (each
    counted alone), every node at most once on a path; `loops` when an edge leads back."""
    graph = WorkflowGraph.from_dict(definition)
    back_edges: list[str] = []

    def most(kind: str) -> int:
        memo: dict[str, int] = {}
        on_path: set[str] = set()

        def walk(node_id: str) -> int:
            if node_id in memo:
                return memo[node_id]
            node = graph.nodes.get(node_id)
            if node is None:
                return 0
            on_path.add(node_id)
            best = 0
            for _, target in node.edges():
                if target in on_path:
                    back_edges.append(target)
                    continue
                best = max(best, walk(target))
            on_path.discard(node_id)
            memo[node_id] = best + (1 if node.type == kind else 0)
            return memo[node_id]

        return walk(graph.start)

    return Effects(most("SEND_MESSAGE"), most("INTEGRATION"), bool(back_edges))


# --- making, reading, canceling ---------------------------------------------------------------


def create(session: Session, *, workspace_id: uuid.UUID, request: Spec, actor: str,
           now: datetime, rate: float = DEFAULT_RATE,
           phone_region: str | None = None) -> BulkOperation:
    """The operation, its runs frozen: every run the filter matches now."""
    if not 0 < rate <= 1000:
        raise InvalidInput("rate must be between 0 and 1,000 runs a second")
    run_filter = _run_filter(session, workspace_id, request, now, phone_region)
    if run_filter is None:
        raise InvalidInput("no run matches this filter: there is nothing to do")
    chosen = run_repo.matching(run_filter)
    count = int(session.scalar(select(func.count()).select_from(chosen.subquery())) or 0)
    if count == 0:
        raise InvalidInput("no run matches this filter: there is nothing to do")
    if count > MAX_RUNS:
        raise InvalidInput(f"this filter matches {count:,} runs; one operation acts on at "
                           f"most {MAX_RUNS:,}: narrow it (a range, a workflow, a cause)")
    operation = BulkOperation(
        id=new_id(), workspace_id=workspace_id, action=request.action,
        version=request.version, status=OPEN, filter=request.filter, reason=request.reason,
        actor=actor, rate=rate, total=0, done=0, skipped=0, failed=0, created_at=now)
    session.add(operation)
    session.flush()
    frozen = chosen.with_only_columns(literal(operation.id), WorkflowRun.id,
                                      literal("PENDING"))
    session.execute(insert(BulkItem).from_select(["operation_id", "run_id", "state"], frozen))
    operation.total = int(session.scalar(select(func.count()).select_from(BulkItem).where(
        BulkItem.operation_id == operation.id)) or 0)
    workspace_service.audit(
        session, workspace_id=workspace_id, actor=actor, action="bulk.create",
        target_type="bulk_operation", target_id=str(operation.id), now=now,
        detail={"action": request.action, "filter": request.filter, "version": request.version,
                "reason": request.reason, "total": operation.total})
    return operation


def get(session: Session, *, workspace_id: uuid.UUID, operation_id: str | uuid.UUID
        ) -> BulkOperation:
    parsed = operation_id if isinstance(operation_id, uuid.UUID) else parse_id(operation_id)
    found = session.get(BulkOperation, parsed) if parsed else None
    if found is None or found.workspace_id != workspace_id:
        raise NotFound(f"no bulk operation {operation_id!s} in this workspace")
    return found


def recent(session: Session, *, workspace_id: uuid.UUID, limit: int = 50
           ) -> list[BulkOperation]:
    return list(session.scalars(
        select(BulkOperation).where(BulkOperation.workspace_id == workspace_id)
        .order_by(BulkOperation.created_at.desc(), BulkOperation.id.desc()).limit(limit)))


@dataclass(frozen=True, slots=True)
class ItemRow:
    run_id: uuid.UUID
    state: str
    result_run_id: uuid.UUID | None
    detail: str | None
    acted_at: datetime | None


def items(session: Session, *, operation: BulkOperation, states: Sequence[str] = (),
          limit: int = 50) -> list[ItemRow]:
    """Items of the operation, those acted on most recently first."""
    query = select(BulkItem).where(BulkItem.operation_id == operation.id)
    if states:
        query = query.where(BulkItem.state.in_(list(states)))
    query = query.order_by(BulkItem.acted_at.desc().nulls_last(), BulkItem.run_id).limit(limit)
    return [ItemRow(i.run_id, i.state, i.result_run_id, i.detail, i.acted_at)
            for i in session.scalars(query)]


def skip_reasons(session: Session, *, operation: BulkOperation) -> dict[str, int]:
    rows = session.execute(
        select(BulkItem.detail, func.count()).where(
            BulkItem.operation_id == operation.id, BulkItem.state.in_(("SKIPPED", "FAILED")))
        .group_by(BulkItem.detail))
    return {str(detail): int(n) for detail, n in rows}


def cancel(session: Session, *, workspace_id: uuid.UUID, operation_id: str, actor: str,
           now: datetime) -> BulkOperation:
    """Stop acting: the runs already acted on stay as they are; the rest are left."""
    operation = get(session, workspace_id=workspace_id, operation_id=operation_id)
    session.refresh(operation, with_for_update=session.get_bind().dialect.name != "sqlite")
    if operation.status != OPEN:
        raise Conflict(f"bulk operation {operation.id} is already {operation.status}")
    operation.status, operation.finished_at = "CANCELED", now
    workspace_service.audit(
        session, workspace_id=workspace_id, actor=actor, action="bulk.stop",
        target_type="bulk_operation", target_id=str(operation.id), now=now,
        detail={"done": operation.done, "skipped": operation.skipped,
                "failed": operation.failed, "left": operation.total - _acted(operation)})
    return operation


def _acted(operation: BulkOperation) -> int:
    return operation.done + operation.skipped + operation.failed


# --- acting (the worker) --------------------------------------------------------------------------


@dataclass(slots=True)
class Acted:
    state: str  # DONE | SKIPPED | FAILED
    detail: str | None = None
    result_run_id: uuid.UUID | None = None


@dataclass(slots=True)
class _Counts:
    done: int = 0
    skipped: int = 0
    failed: int = 0


def advance(runtime: Runtime, *, worker: str, lease_seconds: float = LEASE_SECONDS) -> int:
    """Act on the next items of one open operation, as far as its pace allows; how many
    were acted on (0: nothing open, another worker holds it, or it is ahead of pace). The
    worker holds the operation for `lease_seconds` after its last batch."""
    with read_scope(runtime.sessions) as session:
        candidate = session.scalar(
            select(BulkOperation.id).where(BulkOperation.status == OPEN)
            .order_by(BulkOperation.created_at).limit(1))
    if candidate is None:
        return 0
    now = runtime.clock()
    with session_scope(runtime.sessions) as session:
        took = session.execute(
            update(BulkOperation)
            .where(BulkOperation.id == candidate, BulkOperation.status == OPEN,
                   (BulkOperation.lease_until.is_(None)) | (BulkOperation.lease_until < now)
                   | (BulkOperation.lease_owner == worker))
            .values(lease_owner=worker, lease_until=now + timedelta(seconds=lease_seconds))
        ).rowcount  # type: ignore[attr-defined]
        if not took:
            return 0
        operation = session.get(BulkOperation, candidate)
        assert operation is not None
        elapsed = max(0.0, (now - operation.created_at).total_seconds())
        allowed = min(PER_CALL, math.floor(operation.rate * elapsed) + 1 - _acted(operation))
    acted = 0
    while acted < allowed:
        step = _batch(runtime, candidate, worker, min(BATCH, allowed - acted), lease_seconds)
        if step is None:
            break
        acted += step
        crash_point("bulk_committed")
    return acted


def _batch(runtime: Runtime, operation_id: uuid.UUID, worker: str, size: int,
           lease_seconds: float) -> int | None:
    """One transaction: the next `size` items acted on and marked, the counts kept. None
    when the operation is no longer this worker's to act on, or has nothing left (then
    it is finished here)."""
    now = runtime.clock()
    with session_scope(runtime.sessions) as session:
        operation = session.get(BulkOperation, operation_id,
                                with_for_update=session.get_bind().dialect.name != "sqlite")
        if operation is None or operation.status != OPEN or operation.lease_owner != worker:
            return None  # canceled, or taken over by another worker: it acts from here
        pending = list(session.scalars(
            select(BulkItem.run_id).where(BulkItem.operation_id == operation_id,
                                          BulkItem.state == "PENDING")
            .order_by(BulkItem.run_id).limit(size)))
        if not pending:
            _finish(session, operation, now)
            return None
        counts = _Counts()
        for run_id in pending:
            _item(session, operation, run_id, now, counts)
        operation.done += counts.done
        operation.skipped += counts.skipped
        operation.failed += counts.failed
        operation.lease_until = now + timedelta(seconds=lease_seconds)
        crash_point("bulk_acted")
        return len(pending)


def _item(session: Session, operation: BulkOperation, run_id: uuid.UUID, now: datetime,
          counts: _Counts) -> None:
    """Act on one run inside a savepoint, and mark its item in the same one: the mark is
    conditional on the item being PENDING still, so a second hand changes nothing."""
    with session.begin_nested() as nested:
        try:
            acted = _act(session, operation, run_id, now)
        except RelayflowError as exc:  # this run only: it is FAILED with the reason
            nested.rollback()
            with session.begin_nested():
                _mark(session, operation.id, run_id, Acted("FAILED", exc.detail), now)
            counts.failed += 1
            return
        if not _mark(session, operation.id, run_id, acted, now):
            nested.rollback()  # another worker acted on it first
            return
    if acted.state == "DONE":
        counts.done += 1
    else:
        counts.skipped += 1


def _mark(session: Session, operation_id: uuid.UUID, run_id: uuid.UUID, acted: Acted,
          now: datetime) -> bool:
    changed = session.execute(
        update(BulkItem)
        .where(BulkItem.operation_id == operation_id, BulkItem.run_id == run_id,
               BulkItem.state == "PENDING")
        .values(state=acted.state, detail=acted.detail, result_run_id=acted.result_run_id,
                acted_at=now)
        .execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
    return bool(changed)


def _act(session: Session, operation: BulkOperation, run_id: uuid.UUID,
         now: datetime) -> Acted:
    run = session.get(WorkflowRun, run_id)
    if run is None or run.workspace_id != operation.workspace_id:
        return Acted("SKIPPED", "the run no longer exists (removed by retention)")
    actor = f"bulk:{operation.id}"
    if operation.action == "cancel":
        if run.status in TERMINAL:
            return Acted("SKIPPED", f"already {run.status}")
        run_service.cancel(session, workspace_id=run.workspace_id, run_id=run.id, actor=actor,
                           now=now, reason=operation.reason or f"bulk operation {operation.id}",
                           audit=False)
        return Acted("DONE")
    if run.status not in TERMINAL:
        return Acted("SKIPPED", "not finished yet")
    retries = session.execute(
        select(WorkflowRun.id, WorkflowRun.status).where(WorkflowRun.retry_of == run.id)
        .order_by(WorkflowRun.created_at.desc())).all()
    for retry_id, status in retries:
        if status == _DONE_RETRY:
            return Acted("SKIPPED", "already retried successfully", retry_id)
    for retry_id, status in retries:
        if status not in TERMINAL:
            return Acted("SKIPPED", "a retry is still going", retry_id)
    retry = run_service.retry(
        session, workspace_id=run.workspace_id, run_id=run.id, actor=actor, now=now,
        version=operation.version or "original",
        idempotency_key=f"bulk:{operation.id}:{run.id}", audit=False)
    return Acted("DONE", None, retry.id)


def _finish(session: Session, operation: BulkOperation, now: datetime) -> None:
    operation.status, operation.finished_at = "COMPLETED", now
    operation.lease_owner = operation.lease_until = None
    workspace_service.audit(
        session, workspace_id=operation.workspace_id, actor=operation.actor,
        action="bulk.finish", target_type="bulk_operation", target_id=str(operation.id),
        now=now, detail={"done": operation.done, "skipped": operation.skipped,
                         "failed": operation.failed, "total": operation.total})


__all__ = ["ACTIONS", "DEFAULT_RATE", "Effects", "Preview", "Spec", "advance", "cancel",
           "create", "get", "items", "path_effects", "preview", "recent", "skip_reasons",
           "spec"]
