"""Failure groups (services/failures.py): their descriptions, and their counts read from
the failed runs and attempts through the indexes that hold only those
(ix_runs_ws_fingerprint_created, ix_deliveries_ws_fingerprint_created)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Integer, cast, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased

from relayflow.storage.dialect import not_indexed
from relayflow.storage.models import DeliveryAttempt, FailureGroup, Workflow, WorkflowRun

_DONE = {"run": ("COMPLETED",), "delivery": ("SENT", "DELIVERED")}
# (the later run or attempt, the failed one): made once, as building an alias's columns
# costs more than the query it serves (16 ms a call at 300,000 runs).
_PAIRS: dict[str, tuple[Any, Any]] = {
    "run": (aliased(WorkflowRun), aliased(WorkflowRun)),
    "delivery": (aliased(DeliveryAttempt), aliased(DeliveryAttempt))}



@dataclass(slots=True)
class Group:
    fingerprint: str
    kind: str
    workflow_key: str | None
    workflow_name: str | None
    node_id: str | None
    node_type: str | None
    error_class: str
    pattern: str
    sample_error: str
    count: int = 0
    unresolved: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    buckets: list[int] = field(default_factory=list)


def describe(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Each cause's description, written by the first failure of it; the rows of causes
    already described change nothing."""
    if not rows:
        return
    first: dict[tuple[Any, str], dict[str, Any]] = {}
    for row in rows:
        first.setdefault((row["workspace_id"], row["fingerprint"]), row)
    # In one order everywhere: two commits inserting the same new causes wait for each
    # other (PostgreSQL), and in opposite orders they would deadlock.
    unique = [first[key] for key in sorted(first, key=str)]
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(FailureGroup).values(unique).on_conflict_do_nothing(
        index_elements=[FailureGroup.workspace_id, FailureGroup.fingerprint]))


def _bucket(session: Session, created_at: Any, start: datetime,
            width: timedelta) -> ColumnElement[int]:
    """Which of the equal parts of the range, counted from `start`, a row falls in."""
    first, seconds = int(start.timestamp()), max(1, int(width.total_seconds()))
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.floor((func.extract("epoch", created_at) - first) / seconds), Integer)
    epoch = cast(func.strftime(literal_column("'%s'"), created_at), Integer)
    return cast((epoch - first) / seconds, Integer)  # integers: SQLite divides them whole


def groups(session: Session, *, workspace_id: uuid.UUID, kinds: Sequence[str],
           workflow_id: uuid.UUID | None, start: datetime, end: datetime,
           bucket: timedelta, buckets: int) -> list[Group]:
    """Every group with a failure created in [start, end), counted there."""
    found: dict[str, Group] = {}
    counted: dict[str, list[tuple[int, int, datetime, datetime]]] = {}
    for kind in kinds:
        table: Any = WorkflowRun if kind == "run" else DeliveryAttempt
        # Only the failures, in their own index: SQLite, without statistics, would rather
        # walk the range's every run in the time index, so the time is kept from it.
        where = [table.workspace_id == workspace_id, table.fingerprint.is_not(None),
                 not_indexed(table.created_at) >= start, not_indexed(table.created_at) < end]
        if workflow_id is not None:
            where.append(table.fingerprint.in_(
                select(FailureGroup.fingerprint).where(FailureGroup.workspace_id == workspace_id,
                                                       FailureGroup.workflow_id == workflow_id)))
        part = _bucket(session, table.created_at, start, bucket).label("part")
        query = (select(table.fingerprint, part, func.count(), func.min(table.created_at),
                        func.max(table.created_at))
                 .where(*where).group_by(table.fingerprint, part))
        for name, index, n, first, last in session.execute(query):
            counted.setdefault(name, []).append((int(index), int(n), first, last))
    if not counted:
        return []
    described = session.execute(
        select(FailureGroup, Workflow.key, Workflow.name)
        .outerjoin(Workflow, Workflow.id == FailureGroup.workflow_id)
        .where(FailureGroup.workspace_id == workspace_id,
               FailureGroup.fingerprint.in_(list(counted))))
    for row, key, name in described:
        found[row.fingerprint] = Group(
            fingerprint=row.fingerprint, kind=row.kind, workflow_key=key,
            workflow_name=name, node_id=row.node_id, node_type=row.node_type,
            error_class=row.error_class, pattern=row.pattern,
            sample_error=row.sample_error, buckets=[0] * buckets)
    for name, parts in counted.items():
        found_group = found.get(name)
        if found_group is None:  # its description was deleted with its workflow
            continue
        for index, n, first, last in parts:
            found_group.count += n
            found_group.buckets[min(max(index, 0), buckets - 1)] += n
            found_group.first_seen = min(filter(None, (found_group.first_seen, first)))
            found_group.last_seen = max(filter(None, (found_group.last_seen, last)))
    resolved = _resolved(session, workspace_id, kinds, start, end)
    for group in found.values():
        group.unresolved = group.count - resolved.get(group.fingerprint, 0)
    return list(found.values())


def _resolved(session: Session, workspace_id: uuid.UUID, kinds: Sequence[str],
              start: datetime, end: datetime) -> dict[str, int]:
    """By fingerprint: the failures in the range that a later run or attempt made good (a
    retry of the run that COMPLETED; a retry or resend of the attempt that was SENT or
    DELIVERED). Driven from the retries, which are few: through the index of the link,
    then each failure by its id. SQLite, without statistics, is kept from the other
    columns' indexes (not_indexed): left to itself it walked every sent attempt for each
    failure of the range (34 ms at 5,000 runs)."""
    done: dict[str, set[uuid.UUID]] = {}
    for kind in kinds:
        links = ("retry_of",) if kind == "run" else ("retry_of", "resend_of")
        later, failed = _PAIRS[kind]
        for link in links:
            query = (select(failed.fingerprint, failed.id)
                     .join(later, failed.id == getattr(later, link))
                     .where(not_indexed(later.workspace_id) == workspace_id,
                            getattr(later, link).is_not(None),
                            not_indexed(later.status).in_(_DONE[kind]),
                            not_indexed(failed.workspace_id) == workspace_id,
                            not_indexed(failed.fingerprint).is_not(None),
                            not_indexed(failed.created_at) >= start,
                            not_indexed(failed.created_at) < end))
            for name, failed_id in session.execute(query):
                done.setdefault(name, set()).add(failed_id)
    return {name: len(ids) for name, ids in done.items()}
