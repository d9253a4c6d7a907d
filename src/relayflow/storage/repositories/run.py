from __future__ import annotations

import bisect
import typing
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Row,
    Select,
    Table,
    and_,
    case,
    cast,
    extract,
    func,
    insert,
    literal_column,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session, aliased

from relayflow.engine.status import TERMINAL, RunStatus
from relayflow.storage.dialect import not_indexed, utc_text, uuid_text
from relayflow.storage.models import (
    Contact,
    DeliveryAttempt,
    RunKey,
    RunStep,
    Workflow,
    WorkflowRun,
    WorkflowVersion,
)
from relayflow.storage.repositories import rollup, run_search
from relayflow.storage.repositories.rollup import HOUR
from relayflow.storage.repositories.run_search import Search


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFilter:
    workspace_id: uuid.UUID
    statuses: Sequence[str] = ()
    workflow_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    fingerprint: str | None = None  # failed runs of one cause
    ids: tuple[uuid.UUID, ...] | None = None  # these runs only (a bulk operation's list)
    search: Search | None = None  # what they hold (run_search.py)


@dataclass(frozen=True, slots=True)
class RetryRef:
    """The newest run retrying a run (retry_of), and where it is."""

    id: uuid.UUID
    status: str


@dataclass(frozen=True, slots=True)
class RunRow:
    run: WorkflowRun
    workflow_key: str
    version_number: int
    contact_email: str | None
    contact_phone: str | None
    # Its newest retry: filled in by with_latest_retries, None until then (and when none).
    latest_retry: RetryRef | None = None


_RUNS = typing.cast(Table, WorkflowRun.__table__)
_STEPS = typing.cast(Table, RunStep.__table__)
_KEYS = typing.cast(Table, RunKey.__table__)


def add_new(session: Session, *, runs: list[dict[str, object]],
            steps: list[dict[str, object]]) -> None:
    """Insert new runs and their first steps, as plain rows (Core, not the ORM's unit of
    work: several times faster for a run's few columns), and the idempotency keys of those
    that have one (a key taken already fails the insert with an IntegrityError)."""
    if runs:
        session.execute(insert(_RUNS), runs)
        keys = [{"workflow_id": r["workflow_id"], "idempotency_key": r["idempotency_key"],
                 "run_id": r["id"]} for r in runs if r.get("idempotency_key") is not None]
        if keys:
            session.execute(insert(_KEYS), keys)
    if steps:
        session.execute(insert(_STEPS), steps)


def get(session: Session, workspace_id: uuid.UUID, run_id: uuid.UUID) -> WorkflowRun | None:
    return session.scalar(
        select(WorkflowRun).where(WorkflowRun.workspace_id == workspace_id,
                                  WorkflowRun.id == run_id)
    )


def get_many(session: Session, run_ids: Sequence[uuid.UUID]) -> list[WorkflowRun]:
    return list(session.scalars(select(WorkflowRun).where(WorkflowRun.id.in_(run_ids))))


def find_by_idempotency_key(
    session: Session, workflow_id: uuid.UUID, key: str
) -> WorkflowRun | None:
    return session.scalar(
        select(WorkflowRun).join(RunKey, RunKey.run_id == WorkflowRun.id)
        .where(RunKey.workflow_id == workflow_id, RunKey.idempotency_key == key)
    )


def find_by_idempotency_keys(
    session: Session, keys: Iterable[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], WorkflowRun]:
    """The runs opened under any of the (workflow id, idempotency key) pairs, in one query."""
    by_workflow: dict[uuid.UUID, set[str]] = {}
    for workflow_id, key in keys:
        by_workflow.setdefault(workflow_id, set()).add(key)
    if not by_workflow:
        return {}
    query = select(WorkflowRun).join(RunKey, RunKey.run_id == WorkflowRun.id).where(or_(*(
        (RunKey.workflow_id == workflow_id) & RunKey.idempotency_key.in_(sorted(found))
        for workflow_id, found in by_workflow.items())))
    return {(run.workflow_id, run.idempotency_key or ""): run for run in session.scalars(query)}


def count_duplicate(session: Session, run_id: uuid.UUID) -> None:
    session.execute(
        update(WorkflowRun)
        .where(WorkflowRun.id == run_id)
        .values(duplicates_ignored=WorkflowRun.duplicates_ignored + 1)
        .execution_options(synchronize_session=False)
    )


def steps_of(session: Session, run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[RunStep]]:
    out: dict[uuid.UUID, list[RunStep]] = {r: [] for r in run_ids}
    query = select(RunStep).where(RunStep.run_id.in_(run_ids)).order_by(RunStep.seq)
    for step in session.scalars(query):
        out[step.run_id].append(step)
    return out


def _filtered(query, f: RunFilter):  # type: ignore[no-untyped-def]
    # A search is driven by the runs it finds (their ids, looked up by key), not by a walk
    # of the workspace's runs in time order that SQLite would otherwise choose: there every
    # index starts with the workspace.
    workspace = WorkflowRun.workspace_id if f.search is None else not_indexed(
        WorkflowRun.workspace_id)
    query = query.where(workspace == f.workspace_id)
    if f.statuses:
        query = query.where(WorkflowRun.status_in(f.statuses))
    if f.workflow_id is not None:
        query = query.where(WorkflowRun.workflow_id == f.workflow_id)
    if f.contact_id is not None:
        query = query.where(WorkflowRun.contact_id == f.contact_id)
    if f.created_from is not None:
        query = query.where(WorkflowRun.created_at >= f.created_from)
    if f.created_to is not None:
        query = query.where(WorkflowRun.created_at < f.created_to)
    if f.fingerprint is not None:
        query = query.where(WorkflowRun.fingerprint == f.fingerprint)
    if f.ids is not None:
        query = query.where(WorkflowRun.id.in_(f.ids))
    if f.search is not None:
        query = query.where(run_search.condition(f.search))
    return query


def matching(f: RunFilter) -> Select[uuid.UUID]:
    """The ids of the runs under the filter, as a query to count or insert from."""
    return typing.cast("Select[uuid.UUID]", _filtered(select(WorkflowRun.id), f))


def _rows() -> Select[WorkflowRun, str, int, str | None, str | None]:
    return (
        select(WorkflowRun, Workflow.key, WorkflowVersion.number, Contact.email, Contact.phone)
        .join(Workflow, Workflow.id == WorkflowRun.workflow_id)
        .join(WorkflowVersion, WorkflowVersion.id == WorkflowRun.version_id)
        .outerjoin(Contact, Contact.id == WorkflowRun.contact_id)
    )


def _to_row(row: Row[WorkflowRun, str, int, str | None, str | None]) -> RunRow:
    run, key, number, email, phone = row
    return RunRow(run, key, number, email, phone)


def get_row(session: Session, workspace_id: uuid.UUID, run_id: uuid.UUID) -> RunRow | None:
    query = _rows().where(WorkflowRun.workspace_id == workspace_id, WorkflowRun.id == run_id)
    found = session.execute(query).first()
    return _to_row(found) if found is not None else None


def family_rows(session: Session, workspace_id: uuid.UUID, run_id: uuid.UUID) -> list[RunRow]:
    """In one query: the run, the runs it started or that retry it, and the run that
    started it or that it retries; oldest first. Empty when the run is not in the
    workspace. Each OR term has an index of its own (primary key, parent_run_id,
    retry_of), which both databases combine."""
    me = aliased(WorkflowRun)
    parent = select(me.parent_run_id).where(me.id == run_id).scalar_subquery()
    original = select(me.retry_of).where(me.id == run_id).scalar_subquery()
    query = (
        _rows()
        .where(not_indexed(WorkflowRun.workspace_id) == workspace_id)
        .where(or_(WorkflowRun.id == run_id, WorkflowRun.parent_run_id == run_id,
                   WorkflowRun.retry_of == run_id, WorkflowRun.id == parent,
                   WorkflowRun.id == original))
        .order_by(WorkflowRun.created_at, WorkflowRun.id)
    )
    return [_to_row(row) for row in session.execute(query)]


def latest_retries(session: Session, workspace_id: uuid.UUID,
                   run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, RetryRef]:
    """The newest retry of each of the runs that has one, in one query the retry_of index
    serves: every retry of them, oldest first, the last of each run kept."""
    if not run_ids:
        return {}
    query = (
        select(WorkflowRun.retry_of, WorkflowRun.id, WorkflowRun.status)
        .where(WorkflowRun.retry_of.in_(list(run_ids)),
               not_indexed(WorkflowRun.workspace_id) == workspace_id)
        .order_by(WorkflowRun.created_at, WorkflowRun.id)
    )
    found: dict[uuid.UUID, RetryRef] = {}
    for original, retry_id, status in session.execute(query):
        if original is not None:  # always: the query asks for runs retrying others
            found[original] = RetryRef(retry_id, status)
    return found


def with_latest_retries(session: Session, workspace_id: uuid.UUID,
                        rows: Sequence[RunRow]) -> list[RunRow]:
    """The rows with their newest retry filled in: one query for all of them, none when
    none is finished (only a finished run can be retried)."""
    finished = [r.run.id for r in rows if r.run.status in TERMINAL]
    found = latest_retries(session, workspace_id, finished)
    return [replace(r, latest_retry=found.get(r.run.id)) for r in rows]


def steps_with_attempts(session: Session, workspace_id: uuid.UUID, run_id: uuid.UUID
                        ) -> list[tuple[RunStep, DeliveryAttempt | None]]:
    """In one query: the run's steps in order, each with every delivery attempt of it
    (a step without one comes once, with None), attempts oldest first."""
    query = (
        select(RunStep, DeliveryAttempt)
        .outerjoin(DeliveryAttempt, and_(
            DeliveryAttempt.run_id == RunStep.run_id, DeliveryAttempt.step_seq == RunStep.seq,
            not_indexed(DeliveryAttempt.workspace_id) == workspace_id))
        .where(RunStep.run_id == run_id)
        .order_by(RunStep.seq, DeliveryAttempt.created_at, DeliveryAttempt.attempt_number,
                  DeliveryAttempt.id)
    )
    return [(step, attempt) for step, attempt in session.execute(query)]


def list_page(
    session: Session,
    f: RunFilter,
    *,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None = None,
) -> list[RunRow]:
    """Newest first, keyset on (created_at, id): stable while new runs arrive.

    The row-value comparison lets both databases walk the (workspace, ..., created_at, id)
    indexes backwards from the cursor instead of counting past skipped rows."""
    query = _filtered(_rows(), f)
    if before is not None:
        query = query.where(tuple_(WorkflowRun.created_at, WorkflowRun.id) < before)
    query = query.order_by(WorkflowRun.created_at.desc(), WorkflowRun.id.desc()).limit(limit)
    return [_to_row(row) for row in session.execute(query)]


ExportRow = tuple[str, str, int, str | None, str | None, str, str, str, str | None, str | None,
                  str | None, str | None]


def export_page(session: Session, f: RunFilter, *, limit: int,
                before: tuple[datetime, uuid.UUID] | None = None) -> Sequence[ExportRow]:
    """A page of `list_page`'s runs as plain values, ids and times already text: id,
    workflow key, version, email, phone, status, trigger, created, started and finished at,
    current node, error. Only the columns an export shows, and no object per row."""
    query = _filtered(select(
        uuid_text(WorkflowRun.id), Workflow.key, WorkflowVersion.number, Contact.email,
        Contact.phone, WorkflowRun.status, WorkflowRun.trigger_type,
        utc_text(WorkflowRun.created_at), utc_text(WorkflowRun.started_at),
        utc_text(WorkflowRun.finished_at), WorkflowRun.current_node, WorkflowRun.error,
    ).join(Workflow, Workflow.id == WorkflowRun.workflow_id)
        .join(WorkflowVersion, WorkflowVersion.id == WorkflowRun.version_id)
        .outerjoin(Contact, Contact.id == WorkflowRun.contact_id), f)
    if before is not None:
        query = query.where(tuple_(WorkflowRun.created_at, WorkflowRun.id) < before)
    query = query.order_by(WorkflowRun.created_at.desc(), WorkflowRun.id.desc()).limit(limit)
    # On the connection, not the session: the ORM adds nothing here but time per row.
    return typing.cast(Sequence[ExportRow], session.connection().execute(query).all())


def count_by_status(session: Session, f: RunFilter) -> dict[str, int]:
    """Runs by status under the filter. Whole hours come from the rollup (rollup.py),
    whatever the history's size; a contact's runs, and the hours a window starts or ends
    inside, are counted from the runs' own indexes, and so are a cause's failed runs."""
    return rollup.by_status(session, rollup.RUNS, f, _keys(f),
                            lambda part: _count_by_status(session, part))


def _count_by_status(session: Session, f: RunFilter) -> dict[str, int]:
    if f.fingerprint is not None:
        # Only a FAILED run has a fingerprint (set as it fails: services/walker.py), and a
        # failed run never changes: a cause's runs are counted in its index alone, without
        # reading each run's status (100,000 rows for a large cause at 10M runs).
        n = int(session.scalar(_filtered(select(func.count()), f)) or 0)
        return {RunStatus.FAILED.value: n} if n else {}
    status = not_indexed(WorkflowRun.status)
    query = _filtered(select(status, func.count()), f).group_by(status)
    return {status: int(n) for status, n in session.execute(query)}


def _keys(f: RunFilter) -> dict[str, object]:
    return {} if f.workflow_id is None else {"workflow_id": f.workflow_id}


def count_children(session: Session, workspace_id: uuid.UUID, run_id: uuid.UUID) -> int:
    """Child runs a run has started (by TRIGGER_WORKFLOW); the parent_run_id index serves it."""
    query = select(func.count()).select_from(WorkflowRun).where(
        WorkflowRun.workspace_id == workspace_id, WorkflowRun.parent_run_id == run_id)
    return int(session.scalar(query) or 0)


def cancel_open_steps(session: Session, run_id: uuid.UUID, now: datetime) -> None:
    session.execute(
        update(RunStep)
        .where(RunStep.run_id == run_id, RunStep.status.in_(("RUNNING", "WAITING")))
        .values(status="CANCELED", finished_at=now)
        .execution_options(synchronize_session=False)
    )


def list_newer(
    session: Session,
    f: RunFilter,
    *,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None = None,
) -> list[RunRow]:
    """Oldest first from just after the cursor: the reverse keyset walk behind a "Newer"
    link (the caller flips the page back to newest first). No cursor: the oldest rows."""
    query = _filtered(_rows(), f)
    if after is not None:
        query = query.where(tuple_(WorkflowRun.created_at, WorkflowRun.id) > after)
    query = query.order_by(WorkflowRun.created_at.asc(), WorkflowRun.id.asc()).limit(limit)
    return [_to_row(row) for row in session.execute(query)]


def _epoch_seconds(session: Session) -> ColumnElement[int]:
    """created_at as whole seconds since the epoch, in SQL: the one dialect-specific
    expression of the listings (SQLite keeps naive UTC text that strftime reads;
    PostgreSQL a timestamptz whose EXTRACT is a fractional numeric)."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.floor(extract("epoch", WorkflowRun.created_at)), BigInteger)
    return cast(func.strftime(literal_column("'%s'"), WorkflowRun.created_at), Integer)


def _int(value: int) -> ColumnElement[int]:
    # Inlined, not bound: PostgreSQL only accepts the same GROUP BY expression in the
    # select list when it is textually the same, and two binds of one value are not.
    return literal_column(str(int(value)), BigInteger)


def count_by_bucket(
    session: Session, f: RunFilter, *, size_seconds: int, origin: int = 0,
    offsets: Sequence[tuple[int, int]] = (),
) -> list[tuple[int, str, int]]:
    """(bucket start, status, runs) for the filtered runs, counted by the database in
    buckets of `size_seconds` of wall-clock time, whose edges fall on `origin + k * size`.

    `offsets` turns UTC into a timezone's wall clock: (from epoch second, UTC offset in
    seconds) in time order, one pair per offset in force over the window (so a daylight
    saving change moves the day's edges with it); the first applies to everything before
    the second. Bucket starts are wall-clock seconds since 1970-01-01 00:00 in that zone.
    Empty buckets are absent."""
    origin %= size_seconds  # the same edges, and no negative literal in the SQL
    window = rollup.whole_hours(f)
    if window is None:
        return _count_by_bucket(session, f, size_seconds=size_seconds, origin=origin,
                                offsets=offsets)
    first, end = window
    changes = [at for at, _ in offsets[1:]]

    def bucket_of(at: int) -> int:
        wall = at + (offsets[bisect.bisect_right(changes, at)][1] if offsets else 0)
        return wall - (wall - origin) % size_seconds

    counts: dict[tuple[int, str], int] = {}
    # The window's partial hours, and the whole hours a bucket edge or an offset change
    # falls inside (a zone half an hour off UTC), are counted from the runs.
    from_runs = rollup.edges(f, first, end)
    split: set[int] = set()
    for hour, status, n in rollup.count(session, rollup.RUNS, f.workspace_id, equal=_keys(f),
                                        first=first, end=end, by_hour=True):
        if bucket_of(hour) != bucket_of(hour + HOUR - 1) or any(
                hour < at < hour + HOUR for at in changes):
            if hour not in split:
                split.add(hour)
                from_runs.append(replace(f, created_from=datetime.fromtimestamp(hour, UTC),
                                         created_to=datetime.fromtimestamp(hour + HOUR, UTC)))
        elif not f.statuses or status in f.statuses:
            key = (bucket_of(hour), status)
            counts[key] = counts.get(key, 0) + n
    for part in from_runs:
        for bucket, status, n in _count_by_bucket(session, part, size_seconds=size_seconds,
                                                  origin=origin, offsets=offsets):
            counts[bucket, status] = counts.get((bucket, status), 0) + n
    return [(bucket, status, n) for (bucket, status), n in counts.items() if n]


def _count_by_bucket(
    session: Session, f: RunFilter, *, size_seconds: int, origin: int,
    offsets: Sequence[tuple[int, int]],
) -> list[tuple[int, str, int]]:
    epoch = _epoch_seconds(session)
    shift: ColumnElement[int] = _int(offsets[-1][1] if offsets else 0)
    if len(offsets) > 1:
        shift = case(*[(epoch < _int(offsets[i + 1][0]), _int(offsets[i][1]))
                       for i in range(len(offsets) - 1)], else_=shift)
    bucket = (epoch + shift - _int(origin)) // _int(size_seconds)
    status = not_indexed(WorkflowRun.status)
    query = _filtered(select(bucket, status, func.count()), f).group_by(bucket, status)
    return [(origin + int(index) * size_seconds, status, int(n))
            for index, status, n in session.execute(query)]
