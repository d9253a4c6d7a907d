"""Worker beats: which worker processes are running, by the database's clock."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from relayflow.storage import dialect
from relayflow.storage.models import WorkerBeat

# A killed worker's row is forgotten once its last beat is this old.
FORGET_AFTER_SECONDS = 86_400.0


def beat(session: Session, name: str) -> None:
    """Record that worker `name` is alive now (its first beat also records its start)."""
    stamp = dialect.now(session)
    found = session.execute(
        update(WorkerBeat).where(WorkerBeat.name == name).values(seen_at=stamp)
    ).rowcount  # type: ignore[attr-defined]
    if not found:
        session.execute(delete(WorkerBeat).where(
            WorkerBeat.seen_at < dialect.now(session, plus_seconds=-FORGET_AFTER_SECONDS)))
        session.execute(insert(WorkerBeat).values(name=name, started_at=stamp, seen_at=stamp))


def forget(session: Session, name: str) -> None:
    session.execute(delete(WorkerBeat).where(WorkerBeat.name == name))


def alive(session: Session, *, within_seconds: float) -> list[str]:
    """Names of the workers that beat within the last `within_seconds`."""
    return list(session.scalars(select(WorkerBeat.name).where(
        WorkerBeat.seen_at >= dialect.now(session, plus_seconds=-within_seconds))
        .order_by(WorkerBeat.name)))
