"""Failure groups (services/failures.py): their descriptions, and their counts: by hour
from the failures' rollup (run_failure_counts, delivery_failure_counts: storage/
repositories/rollup.py), and within an hour from the failed runs and attempts, through
the indexes that hold only those (ix_runs_ws_fingerprint_created,
ix_deliveries_ws_fingerprint_created)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    cast,
    func,
    literal,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased

from relayflow.storage.dialect import not_indexed
from relayflow.storage.models import DeliveryAttempt, FailureGroup, Workflow, WorkflowRun
from relayflow.storage.repositories import rollup

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


def _bucket(session: Session, created_at: Any, origin: datetime,
            width: timedelta) -> ColumnElement[int]:
    """Which bar of `width`, counted from `origin`, a row falls in."""
    first, seconds = int(origin.timestamp()), max(1, int(width.total_seconds()))
    if session.get_bind().dialect.name == "postgresql":
        # BIGINT: an origin centuries back is more seconds than INTEGER holds.
        return cast(func.floor((func.extract("epoch", created_at)
                                - literal(first, BigInteger)) / seconds), BigInteger)
    epoch = cast(func.strftime(literal_column("'%s'"), created_at), Integer)
    return cast((epoch - first) / seconds, Integer)  # integers: SQLite divides them whole


_KINDS: dict[str, tuple[Any, rollup.Rollup]] = {"run": (WorkflowRun, rollup.RUNS),
                                                 "delivery": (DeliveryAttempt, rollup.ATTEMPTS)}


def groups(session: Session, *, workspace_id: uuid.UUID, kinds: Sequence[str],
           workflow_id: uuid.UUID | None, start: datetime, end: datetime,
           origin: datetime, bucket: timedelta, buckets: int) -> list[Group]:
    """Every group with a failure created in [start, end), counted there, and in bars of
    `bucket` from `origin` (whole hours, on an hour): the whole hours from the failures'
    rollup, the partial hours at either end from the failures themselves."""
    described = select(FailureGroup.fingerprint).where(FailureGroup.workspace_id == workspace_id)
    if workflow_id is not None:
        described = described.where(FailureGroup.workflow_id == workflow_id)
    hour, width, base = rollup.HOUR, int(bucket.total_seconds()), int(origin.timestamp())
    first = datetime.fromtimestamp(-(-int(start.timestamp()) // hour) * hour, UTC)
    last = datetime.fromtimestamp(int(end.timestamp()) // hour * hour, UTC)
    whole = first < last
    partial = [(start, first), (last, end)] if whole else [(start, end)]
    counted: dict[str, list[int]] = {}

    def add(name: str, index: int, n: int) -> None:
        bars = counted.setdefault(name, [0] * buckets)
        bars[min(max(index, 0), buckets - 1)] += n

    for kind in kinds:
        table, kept = _KINDS[kind]
        of_kind = described.where(FailureGroup.kind == kind)
        names = None if workflow_id is None else list(session.scalars(of_kind))
        if whole:
            for bar, name, n in rollup.failures(
                    session, kept, workspace_id, first=int(first.timestamp()),
                    end=int(last.timestamp()), fingerprints=names, origin=base, width=width):
                add(name, int(bar), n)
        for since, until in partial:
            if since >= until:
                continue
            # A partial hour: each described cause's failures in it, through the index of
            # the failures (cause, then time), rather than every run of the hour.
            part = _bucket(session, table.created_at, origin, bucket).label("part")
            query = (select(table.fingerprint, part, func.count())
                     .where(table.workspace_id == workspace_id, table.fingerprint.in_(of_kind),
                            table.created_at >= since, table.created_at < until)
                     .group_by(table.fingerprint, part))
            for name, index, n in session.execute(query):
                add(name, int(index), int(n))
    if not counted:
        return []
    found: dict[str, Group] = {}
    rows = session.execute(
        select(FailureGroup, Workflow.key, Workflow.name)
        .outerjoin(Workflow, Workflow.id == FailureGroup.workflow_id)
        .where(FailureGroup.workspace_id == workspace_id,
               FailureGroup.fingerprint.in_(list(counted))))
    for row, key, name in rows:
        found[row.fingerprint] = Group(
            fingerprint=row.fingerprint, kind=row.kind, workflow_key=key,
            workflow_name=name, node_id=row.node_id, node_type=row.node_type,
            error_class=row.error_class, pattern=row.pattern,
            sample_error=row.sample_error, buckets=counted[row.fingerprint],
            count=sum(counted[row.fingerprint]))
    for kind in kinds:
        _seen(session, workspace_id, kind, start, end,
              {n: g for n, g in found.items() if g.kind == kind})
    resolved = _resolved(session, workspace_id, kinds, start, end)
    for group in found.values():
        group.unresolved = group.count - resolved.get(group.fingerprint, 0)
    return [g for g in found.values() if g.count > 0 and g.last_seen is not None]


def _seen(session: Session, workspace_id: uuid.UUID, kind: str, start: datetime,
          end: datetime, found: dict[str, Group]) -> None:
    """Each group's first and last failure in the range: the two ends of its range in the
    index of the failures, one statement for all of them."""
    if not found:
        return
    table = _KINDS[kind][0]
    within = (table.workspace_id == workspace_id, table.fingerprint == FailureGroup.fingerprint,
              table.created_at >= start, table.created_at < end)
    first = select(func.min(table.created_at)).where(*within).scalar_subquery()
    last = select(func.max(table.created_at)).where(*within).scalar_subquery()
    for name, first_seen, last_seen in session.execute(
            select(FailureGroup.fingerprint, first, last)
            .where(FailureGroup.workspace_id == workspace_id,
                   FailureGroup.fingerprint.in_(list(found)))):
        found[name].first_seen, found[name].last_seen = first_seen, last_seen


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
