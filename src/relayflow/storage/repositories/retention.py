"""Deleting old history.

On PostgreSQL a month whose every run (or attempt) may go leaves whole: its partitions
(storage/partitions.py) are detached and dropped, its rows taken out of the rollups, in
one short transaction. What remains (SQLite, the months that hold something to keep, the
default partitions) goes a workspace at a time, walking its runs and attempts oldest
first through the (workspace, created_at, id) indexes the lists use: each batch is an
index range from where the last one stopped, never a scan of the table. Steps and
idempotency keys go with their runs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, cast

from sqlalchemy import BindParameter, bindparam, delete, select, text, tuple_
from sqlalchemy.orm import Session

from relayflow.engine.status import TERMINAL, DeliveryStatus, RunStatus
from relayflow.storage import partitions
from relayflow.storage.models import (
    DeliveryAttempt,
    RunKey,
    RunStep,
    ScheduleTick,
    TriggerEvent,
    WorkflowRun,
)
from relayflow.storage.repositories import rollup

# Attempts that failed, kept as long as failed runs.
FAILED_ATTEMPTS = (DeliveryStatus.FAILED, DeliveryStatus.BOUNCED)
# Attempts whose outcome may still change (a retry due, a send under way) stay.
OPEN_ATTEMPTS = (DeliveryStatus.QUEUED,)

Position = tuple[datetime, uuid.UUID]


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """What of one workspace may go: finished runs and attempts from before `kept`, failed
    ones from before `failed`."""

    workspace_id: uuid.UUID
    kept: datetime
    failed: datetime


@dataclass(frozen=True, slots=True)
class Batch:
    """One stretch of the walk: the ids that may go, and where the next stretch starts
    (None: the walk is over)."""

    gone: Sequence[uuid.UUID]
    following: Position | None


def runs_batch(session: Session, cutoffs: Cutoffs, *, after: Position | None,
               limit: int) -> Batch:
    """The next `limit` runs of the workspace created before the later cutoff, oldest first
    from `after`; those that may go are terminal and finished before their cutoff (a run
    finishes after it is created, so none created later can)."""
    rows = _oldest(session, WorkflowRun, (WorkflowRun.status, WorkflowRun.finished_at),
                   cutoffs, after=after, limit=limit)
    gone = [run_id for run_id, _, status, finished in rows
            if status in TERMINAL and finished is not None
            and finished < (cutoffs.failed if status == RunStatus.FAILED else cutoffs.kept)]
    return Batch(gone, _following(rows, limit))


def attempts_batch(session: Session, cutoffs: Cutoffs, *, after: Position | None,
                   limit: int) -> Batch:
    """Like runs_batch, for delivery attempts: those not still queued, created before
    their cutoff."""
    rows = _oldest(session, DeliveryAttempt, (DeliveryAttempt.status,), cutoffs, after=after,
                   limit=limit)
    gone = [attempt_id for attempt_id, created, status in rows
            if status not in OPEN_ATTEMPTS
            and created < (cutoffs.failed if status in FAILED_ATTEMPTS else cutoffs.kept)]
    return Batch(gone, _following(rows, limit))


def _oldest(session: Session, model: type[WorkflowRun] | type[DeliveryAttempt],
            columns: tuple[Any, ...], cutoffs: Cutoffs, *, after: Position | None,
            limit: int) -> Sequence[tuple[Any, ...]]:
    """(id, created_at, *columns) of the workspace's next `limit` rows created before the
    later cutoff, oldest first after `after`: a range of its (workspace, created_at, id)
    index."""
    query = select(model.id, model.created_at, *columns).where(
        model.workspace_id == cutoffs.workspace_id,
        model.created_at < max(cutoffs.kept, cutoffs.failed))
    if after is not None:
        query = query.where(tuple_(model.created_at, model.id) > after)
    rows = session.execute(query.order_by(model.created_at, model.id).limit(limit)).all()
    return cast(Sequence[tuple[Any, ...]], rows)


def _following(rows: Sequence[tuple[Any, ...]], limit: int) -> Position | None:
    return (rows[-1][1], rows[-1][0]) if len(rows) == limit else None


def delete_runs(session: Session, run_ids: Sequence[uuid.UUID]) -> None:
    """Delete these runs and their steps (through the steps' (run_id, seq) index)."""
    if run_ids:
        session.execute(delete(RunStep).where(RunStep.run_id.in_(run_ids)))
        session.execute(delete(RunKey).where(RunKey.run_id.in_(run_ids)))
        session.execute(delete(WorkflowRun).where(WorkflowRun.id.in_(run_ids)))


def delete_trigger_records(session: Session, cutoffs: Cutoffs) -> None:
    """The workspace's trigger events and schedule ticks older than what it keeps (the
    runs' cutoff: they explain what happened beside the runs of their time)."""
    session.execute(delete(TriggerEvent).where(
        TriggerEvent.workspace_id == cutoffs.workspace_id, TriggerEvent.at < cutoffs.kept))
    session.execute(delete(ScheduleTick).where(
        ScheduleTick.workspace_id == cutoffs.workspace_id, ScheduleTick.tick < cutoffs.kept))


def delete_attempts(session: Session, attempt_ids: Sequence[uuid.UUID]) -> None:
    if attempt_ids:
        session.execute(delete(DeliveryAttempt).where(DeliveryAttempt.id.in_(attempt_ids)))


# The SQL below is formatted from partition names made by storage/partitions.py and this
# module's constants only; every value is a bound parameter (hence bandit's B608 waived).
_RUN_KEEPS = """
    SELECT 1 FROM {partition} AS r LEFT JOIN ({cutoffs}) AS c ON c.workspace_id = r.workspace_id
    WHERE c.workspace_id IS NULL OR NOT coalesce(
        r.status IN :terminal AND r.finished_at <
            CASE WHEN r.status = :failed_run THEN c.failed ELSE c.kept END, false)
    LIMIT 1"""  # nosec B608
_ATTEMPT_KEEPS = """
    SELECT 1 FROM {partition} AS a LEFT JOIN ({cutoffs}) AS c ON c.workspace_id = a.workspace_id
    WHERE c.workspace_id IS NULL OR a.status IN :open OR NOT coalesce(
        a.created_at < CASE WHEN a.status IN :failed THEN c.failed ELSE c.kept END, false)
    LIMIT 1"""  # nosec B608


def months_to_drop(session: Session, table: str, cutoffs: Sequence[Cutoffs]) -> list[date]:
    """The months of `table` (workflow_runs or delivery_attempts) whose partition holds
    nothing to keep, oldest first: every run terminal and finished before its workspace's
    cutoff, every attempt settled and made before its. Each partition is read until the
    first row to keep; a month that ends after every cutoff is not read."""
    if not cutoffs or not partitions.is_partitioned(session.connection(), table):
        return []
    # A month ends before the latest cutoff, or all of it is kept; and before the wall
    # clock's now, or ids are still being made in it.
    latest = min(max(max(c.kept, c.failed) for c in cutoffs), datetime.now(UTC))
    return [month for month in partitions.existing(session.connection(), table)
            if partitions.start(partitions.next_month(month)) <= latest
            and not _keeps(session, table, partitions.name(table, month), cutoffs)]


def _keeps(session: Session, table: str, partition: str, cutoffs: Sequence[Cutoffs]) -> bool:
    values, params = _cutoff_rows(cutoffs)
    if table == "workflow_runs":
        sql = _RUN_KEEPS.format(partition=partition, cutoffs=values)
        params |= {"terminal": sorted(TERMINAL), "failed_run": RunStatus.FAILED}
        binds: list[BindParameter[Any]] = [bindparam("terminal", expanding=True)]
    else:
        sql = _ATTEMPT_KEEPS.format(partition=partition, cutoffs=values)
        params |= {"open": list(OPEN_ATTEMPTS), "failed": list(FAILED_ATTEMPTS)}
        binds = [bindparam("open", expanding=True), bindparam("failed", expanding=True)]
    return session.scalar(text(sql).bindparams(*binds), params) is not None


def _cutoff_rows(cutoffs: Sequence[Cutoffs]) -> tuple[str, dict[str, Any]]:
    """The workspaces' cutoffs as a VALUES list (workspace_id, kept, failed)."""
    rows: list[str] = []
    params: dict[str, Any] = {}
    for n, c in enumerate(cutoffs):
        rows.append(f"(CAST(:w{n} AS uuid), CAST(:k{n} AS timestamptz), "
                    f"CAST(:f{n} AS timestamptz))")
        params |= {f"w{n}": str(c.workspace_id), f"k{n}": c.kept, f"f{n}": c.failed}
    values = ", ".join(rows)
    return f"SELECT * FROM (VALUES {values}) AS v (workspace_id, kept, failed)", params  # nosec B608


# How long a drop waits for a lock before it gives up (and the prune tries again later):
# while it waits, the queries queued behind it wait too.
LOCK_TIMEOUT = "1s"


def drop_month(session: Session, table: str, month: date,
               cutoffs: Sequence[Cutoffs]) -> dict[uuid.UUID, int] | None:
    """Drop the month's partition of `table` (with, for runs, their steps', their words' and
    their idempotency keys), if it still holds nothing to keep; the rows gone by workspace,
    or None when something must stay. The partitions are locked against writes first, so
    that what the rollups lose is exactly what goes, in the same transaction; readers wait
    only for the detach and the drop, which change the catalog alone. A lock not granted
    within LOCK_TIMEOUT raises (sqlalchemy's OperationalError), leaving everything as it
    was."""
    partition = partitions.name(table, month)
    runs = table == "workflow_runs"
    steps = partitions.name("run_steps", month)
    # The runs' words (run_search, migration 0024) go with them; a month made before that
    # table existed has none.
    words = partitions.name("run_search", month)
    with_runs = [(parent, child) for parent, child in (("run_steps", steps),
                                                       ("run_search", words))
                 if runs and child in partitions.partition_names(session.connection())]
    session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    session.execute(text(f"LOCK TABLE {', '.join([partition] + [c for _, c in with_runs])} "
                         "IN SHARE MODE"))
    if _keeps(session, table, partition, cutoffs):
        return None
    gone = rollup.subtract(session, rollup.RUNS if runs else rollup.ATTEMPTS, partition)
    if runs:
        session.execute(delete(RunKey).where(
            RunKey.run_id >= partitions.bound(month),
            RunKey.run_id < partitions.bound(partitions.next_month(month))))
    for parent, child in [*with_runs, (table, partition)]:
        session.execute(text(f"ALTER TABLE {parent} DETACH PARTITION {child}"))
        session.execute(text(f"DROP TABLE {child}"))
    return gone
