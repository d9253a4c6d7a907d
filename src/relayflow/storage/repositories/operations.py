"""What the health checks and the metrics read: the schema's revision, the queue, the
workers' beats. Small reads, each one statement."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from sqlalchemy import case, func, inspect, select, text
from sqlalchemy.orm import Session

from relayflow.storage import dialect
from relayflow.storage.models import Job, WorkerBeat

VERSIONS = Path(__file__).resolve().parent.parent / "migrations" / "versions"
_REVISION = re.compile(r"^(down_)?revision\s*(?::[^=]*)?=\s*['\"]?([\w]+)['\"]?", re.MULTILINE)


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest migration's revision, read from the migration files (Alembic itself is
    not loaded by serve): the one no other migration names as its predecessor."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in VERSIONS.glob("*.py"):
        for down, value in _REVISION.findall(path.read_text(encoding="utf-8")):
            (parents if down else revisions).add(value)
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads: {sorted(heads)}")
    head: str = heads.pop()
    return head


def schema_revision(session: Session) -> str | None:
    """The revision the database was migrated to; None when it was never migrated."""
    if not inspect(session.connection()).has_table("alembic_version"):
        return None  # an empty database
    value = session.scalar(text("SELECT version_num FROM alembic_version"))
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Queue:
    due: int  # due now and not held by a worker
    leased: int  # held by a worker (being walked)
    scheduled: int  # due later (a WAIT, a retry's backoff)
    oldest_due: datetime | None  # when the longest-waiting due job fell due


def queue(session: Session, *, now: datetime) -> Queue:
    live = Job.lease_expires_at >= dialect.now(session)
    free = ~live | Job.lease_expires_at.is_(None)
    due = (Job.due_at <= now) & free
    row = session.execute(select(
        func.count(case((due, 1))),
        func.count(case((live, 1))),
        func.count(case(((Job.due_at > now) & free, 1))),
        func.min(case((due, Job.due_at))),
    )).one()
    oldest = row[3]
    if isinstance(oldest, str):  # SQLite's min() over the CASE loses the column's type
        oldest = datetime.fromisoformat(oldest).replace(tzinfo=now.tzinfo)
    return Queue(due=int(row[0]), leased=int(row[1]), scheduled=int(row[2]), oldest_due=oldest)


@dataclass(frozen=True, slots=True)
class Beats:
    alive: int  # workers that beat within the window
    newest_age: float | None  # seconds since the newest beat of any worker; None: none


def beats(session: Session, *, within_seconds: float) -> Beats:
    now = dialect.current_time(session)
    alive = session.scalar(select(func.count()).where(
        WorkerBeat.seen_at >= dialect.now(session, plus_seconds=-within_seconds)))
    newest = session.scalar(select(func.max(WorkerBeat.seen_at)))
    if isinstance(newest, str):
        newest = datetime.fromisoformat(newest).replace(tzinfo=now.tzinfo)
    age = None if newest is None else max(0.0, (now - newest).total_seconds())
    return Beats(alive=int(alive or 0), newest_age=age)
