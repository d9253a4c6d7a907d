"""Where PostgreSQL and SQLite differ: one function per difference.

Repositories ask here instead of branching on the dialect name themselves.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Interval,
    String,
    func,
    literal,
    literal_column,
    select,
    text,
    type_coerce,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import QueryableAttribute, Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

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


class not_indexed(FunctionElement[Any]):
    """The column, in a form SQLite's planner cannot match to an index (`+column`); the
    column itself on PostgreSQL, which plans by statistics.

    SQLite keeps none (the product never runs ANALYZE), so it prefers an index that gives
    a query's ORDER BY or GROUP BY order, or that matches an equality on workspace_id,
    over the one that narrows the rows: counting a contact's ten runs, it walked the whole
    workspace in the status index's order (601 ms at a million runs). Written around such a
    column, a query leaves SQLite the index that narrows."""

    inherit_cache = True
    name = "not_indexed"

    def __init__(self, column: ColumnElement[Any] | QueryableAttribute[Any]) -> None:
        super().__init__(column)
        self.type = column.type


@compiles(not_indexed)
def _column(element: not_indexed, compiler: SQLCompiler, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(not_indexed, "sqlite")
def _unary_plus(element: not_indexed, compiler: SQLCompiler, **kw: Any) -> str:
    return "+" + str(compiler.process(element.clauses, **kw))


class uuid_text(FunctionElement[str]):
    """A UUID column as its canonical text (`0190c2d4-…`), made by the database: an export
    writes hundreds of thousands of ids, and a uuid.UUID object per id costs more than the
    rest of the row. SQLite stores the 32 hex digits; PostgreSQL a native uuid."""

    inherit_cache = True
    name = "uuid_text"
    type = String()

    def __init__(self, column: ColumnElement[Any] | QueryableAttribute[Any]) -> None:
        super().__init__(column)


@compiles(uuid_text)
def _uuid_cast(element: uuid_text, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS TEXT)"


@compiles(uuid_text, "sqlite")
def _uuid_dashes(element: uuid_text, compiler: SQLCompiler, **kw: Any) -> str:
    hexed = compiler.process(element.clauses, **kw)
    parts = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))
    return " || '-' || ".join(f"substr({hexed}, {at}, {n})" for at, n in parts)


class utc_text(FunctionElement[str]):
    """A UTCDateTime column as ISO 8601 text in UTC with microseconds
    (`2026-12-07T01:02:03.045678Z`), made by the database for the same reason as uuid_text;
    `datetime.fromisoformat` reads it back exactly. NULL stays NULL."""

    inherit_cache = True
    name = "utc_text"
    type = String()

    def __init__(self, column: ColumnElement[Any] | QueryableAttribute[Any]) -> None:
        super().__init__(column)


@compiles(utc_text)
def _utc_to_char(element: utc_text, compiler: SQLCompiler, **kw: Any) -> str:
    stamp = compiler.process(element.clauses, **kw)
    return f"""to_char({stamp} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


@compiles(utc_text, "sqlite")
def _utc_stored(element: utc_text, compiler: SQLCompiler, **kw: Any) -> str:
    # UTCDateTime stores naive UTC as 'YYYY-MM-DD HH:MM:SS.ffffff' on SQLite.
    return f"replace({compiler.process(element.clauses, **kw)}, ' ', 'T') || 'Z'"


_LAG = text("""
    SELECT CASE
        WHEN NOT pg_is_in_recovery() THEN NULL
        WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
        ELSE COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp()), 0)
    END""")


def replica_lag(session: Session) -> float | None:
    """How many seconds the database is behind its primary when it is a streaming replica
    (PostgreSQL in recovery): 0 once it has replayed all the log it received, else the time
    since the last transaction it replayed was committed. None on a primary and on SQLite."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    lag = session.scalar(_LAG)
    return None if lag is None else max(0.0, float(lag))
