"""Request counters for rate limits: one atomic upsert per counted request."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from relayflow.storage.models import RateCounter


def hit(session: Session, key: str, window_start: datetime) -> int:
    """Add one to `key`'s count in the window starting at `window_start`; the new count.

    INSERT … ON CONFLICT DO UPDATE … RETURNING is one atomic statement on both databases
    (SQLite ≥ 3.35), so concurrent requests from any number of processes never lose a count:
    on PostgreSQL a racing insert waits for the row and then updates it, and on SQLite
    BEGIN IMMEDIATE serialises the writers. Only the insert construct is dialect-specific.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(RateCounter)
        .values(key=key, window_start=window_start, count=1)
        .on_conflict_do_update(index_elements=[RateCounter.key, RateCounter.window_start],
                               set_={"count": RateCounter.count + 1})
        .returning(RateCounter.count)
    )
    return int(session.execute(statement).scalar_one())


def delete_before(session: Session, key: str, window_start: datetime) -> None:
    """Forget `key`'s earlier windows (only the current one is ever read)."""
    session.execute(delete(RateCounter).where(RateCounter.key == key,
                                              RateCounter.window_start < window_start))


def delete_all_before(session: Session, cutoff: datetime) -> int:
    """Forget every window that started before `cutoff` (subjects that went quiet)."""
    result = session.execute(delete(RateCounter).where(RateCounter.window_start < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
