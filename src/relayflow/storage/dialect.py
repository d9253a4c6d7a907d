"""Where PostgreSQL and SQLite differ: one function per difference.

Repositories ask here instead of branching on the dialect name themselves.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Interval, func, literal, literal_column, select, type_coerce
from sqlalchemy.orm import Session

from relayflow.storage.types import UTCDateTime


def now(session: Session, *, plus_seconds: float = 0.0) -> ColumnElement[datetime]:
    """The database's own clock (plus some seconds), comparable with a UTCDateTime column.

    Lease decisions use it so that no worker's clock matters: a worker minutes ahead or
    behind still sees the same lease as live or expired as every other worker does.

    PostgreSQL: `statement_timestamp()`, not `now()`: `now()` stands still for the whole
    transaction, and one that waited for a lock would judge leases by a time long past.
    SQLite: 'now' (UTC, millisecond precision) formatted the way UTCDateTime stores
    values there (naive 'YYYY-MM-DD HH:MM:SS.ffffff' text), so comparing the text compares
    the times."""
    if session.get_bind().dialect.name == "postgresql":
        stamp: ColumnElement[datetime] = func.statement_timestamp()
        if plus_seconds:
            stamp = stamp + literal(timedelta(seconds=plus_seconds), Interval())
        return type_coerce(stamp, UTCDateTime())
    offset = f"{plus_seconds:+.3f} seconds"
    text = func.strftime("%Y-%m-%d %H:%M:%f", "now", offset).op("||")(literal_column("'000'"))
    return type_coerce(text, UTCDateTime())


def current_time(session: Session) -> datetime:
    """The database's clock read as a value, for claims that other workers judge by it."""
    value: datetime | None = session.scalar(select(now(session)))
    assert value is not None
    return value
