"""The jobs table: claim under a lease, fence every write, park and release.

Dialect differences: PostgreSQL skips rows another worker has locked (FOR UPDATE SKIP
LOCKED); SQLite needs nothing more because every write transaction starts with BEGIN
IMMEDIATE and so runs alone.

Leases are timed by the database's clock (storage/dialect.py::now), never a worker's:
whether a lease is live, and until when a claim or a renewal holds it, is the same answer
for every worker, however wrong its own clock. Due times (`due_at`) stay on the worker's
clock, which is the clock that set them (a WAIT's wake-up, a retry's backoff).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.orm import Session

from relayflow.storage import dialect
from relayflow.storage.models import Job


@dataclass(frozen=True, slots=True)
class Lease:
    run_id: uuid.UUID
    token: int
    cancel_requested: bool = False
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class JobState:
    token: int
    owner: str | None
    cancel_requested: bool


def claim(
    session: Session, *, worker: str, now: datetime, lease_seconds: float, limit: int
) -> list[Lease]:
    """Lease up to `limit` jobs due by `now` whose lease is free or has expired, each for
    `lease_seconds` from the database's current time."""
    due = (
        select(Job.run_id)
        .where(Job.due_at <= now)
        .where((Job.lease_expires_at.is_(None))
               | (Job.lease_expires_at < dialect.now(session)))
        .order_by(Job.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = session.execute(
        update(Job)
        .where(Job.run_id.in_(due.scalar_subquery()))
        .values(
            lease_owner=worker,
            lease_expires_at=dialect.now(session, plus_seconds=lease_seconds),
            lease_token=Job.lease_token + 1,
            claims=Job.claims + 1,
        )
        .returning(Job.run_id, Job.lease_token, Job.cancel_requested, Job.traceparent)
        .execution_options(synchronize_session=False)
    ).all()
    return [Lease(run_id, token, cancel, parent) for run_id, token, cancel, parent in rows]


def lock(session: Session, run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, JobState]:
    """Read (and on PostgreSQL lock) job rows so a commit can check its fence.

    Rows are locked in run id order, as `renew` updates them: two transactions that lock
    overlapping sets (a worker whose leases lapsed during an outage, and the one that took
    them over) then wait for each other instead of deadlocking."""
    if not run_ids:
        return {}
    query = select(
        Job.run_id, Job.lease_token, Job.lease_owner, Job.cancel_requested
    ).where(Job.run_id.in_(run_ids)).order_by(Job.run_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return {
        row.run_id: JobState(row.lease_token, row.lease_owner, row.cancel_requested)
        for row in session.execute(query)
    }


def add_many(session: Session, rows: list[dict[str, object]]) -> None:
    if rows:
        # Core insert (not the ORM's bulk path): several times faster for plain rows.
        session.execute(insert(cast(Table, Job.__table__)), rows)


def remove(session: Session, run_ids: Iterable[uuid.UUID]) -> None:
    ids = list(run_ids)
    if ids:
        session.execute(delete(Job).where(Job.run_id.in_(ids)))


def park(session: Session, items: Iterable[tuple[uuid.UUID, datetime]]) -> None:
    """Release the lease and make the job due again at the given time."""
    rows = [
        {"run_id": run_id, "due_at": due, "lease_owner": None, "lease_expires_at": None}
        for run_id, due in items
    ]
    if rows:
        session.execute(update(Job), rows)


def renew(
    session: Session, *, worker: str, leases: Iterable[Lease], lease_seconds: float
) -> int:
    """Extend the leases this worker still holds to `lease_seconds` from the database's
    current time; how many it still held."""
    until = dialect.now(session, plus_seconds=lease_seconds)
    renewed = 0
    for lease in sorted(leases, key=lambda lease: lease.run_id):  # lock order: see `lock`
        result = session.execute(
            update(Job)
            .where(Job.run_id == lease.run_id, Job.lease_token == lease.token,
                   Job.lease_owner == worker)
            .values(lease_expires_at=until)
            .execution_options(synchronize_session=False)
        )
        renewed += int(result.rowcount)  # type: ignore[attr-defined]
    return renewed


def held(session: Session, run_id: uuid.UUID) -> bool:
    """Whether a worker holds the run's lease now, by the database's clock."""
    found = session.scalar(select(Job.run_id).where(
        Job.run_id == run_id, Job.lease_expires_at.is_not(None),
        Job.lease_expires_at > dialect.now(session)))
    return found is not None


def get_for_update(session: Session, run_id: uuid.UUID) -> Job | None:
    query = select(Job).where(Job.run_id == run_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return session.scalar(query)


def count(session: Session) -> int:
    return len(session.scalars(select(Job.run_id)).all())
