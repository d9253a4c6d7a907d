"""PostgreSQL keeps runs, their steps and delivery attempts in monthly partitions, so that
a month of history leaves by dropping three tables instead of deleting millions of rows.

Runs and attempts are partitioned by their own id, steps by their run's id. Ids are UUIDv7
(storage/ids.py): their first 48 bits are the Unix time in milliseconds they were made, so
a range of ids is a range of time, a lookup by id reads one partition, the primary keys
stay the ids, and a run's steps share its month. A month's partition holds the ids from
its first millisecond to the next month's; a `_default` partition takes any other id (a
UUID of another version, a clock far off), so no insert ever fails for want of a month.

Partitions are made ahead (MONTHS_AHEAD) by migration 0014, by every worker once an hour
and by `relayflow prune`. SQLite has none of this: it deletes in batches
(services/retention.py)."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

# Each partitioned table and the column its partitions split.
TABLES = {"workflow_runs": "id", "run_steps": "run_id", "delivery_attempts": "id",
          "run_search": "run_id"}  # the search index of runs (migration 0024)
# Months made ahead of the current one.
MONTHS_AHEAD = 2
_MONTH_NAME = re.compile(r"_(\d{4})_(\d{2})$")


def month_of(at: datetime | date) -> date:
    return date(at.year, at.month, 1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def months(first: date, last: date) -> Iterator[date]:
    """The months from `first`'s to `last`'s, both included (dates or datetimes)."""
    month, end = month_of(first), month_of(last)
    while month <= end:
        yield month
        month = next_month(month)


def start(month: date) -> datetime:
    return datetime(month.year, month.month, 1, tzinfo=UTC)


def bound(month: date) -> uuid.UUID:
    """The lowest UUIDv7 of the month's first millisecond (UTC)."""
    return uuid.UUID(int=int(start(month).timestamp() * 1000) << 80)


def name(table: str, month: date) -> str:
    return f"{table}_{month:%Y_%m}"


def default_name(table: str) -> str:
    return f"{table}_default"


def is_partitioned(conn: Connection, table: str = "workflow_runs") -> bool:
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.scalar(text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"),
                       {"t": table})
    return bool(kind == "p")


def partition_names(conn: Connection) -> set[str]:
    """Every partition of every partitioned table (drift checks leave them out)."""
    if conn.dialect.name != "postgresql":
        return set()
    return set(conn.scalars(text("SELECT relname FROM pg_class WHERE relispartition")))


def existing(conn: Connection, table: str) -> list[date]:
    """The months `table` has a partition for, oldest first."""
    found = conn.scalars(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(:t)"), {"t": table})
    return sorted(date(int(m[1]), int(m[2]), 1)
                  for m in (_MONTH_NAME.search(n) for n in found) if m)


def create_sql(table: str, month: date | None) -> str:
    """The DDL of one partition (None: the default one). Names and bounds are made here,
    never taken from input."""
    if month is None:
        return f"CREATE TABLE {default_name(table)} PARTITION OF {table} DEFAULT"
    return (f"CREATE TABLE {name(table, month)} PARTITION OF {table} "
            f"FOR VALUES FROM ('{bound(month)}') TO ('{bound(next_month(month))}')")


def ensure(conn: Connection, first: date, last: date) -> list[str]:
    """Make the partitions of the months from `first` to `last` that do not exist yet;
    the names made. A month whose ids the default partition already holds is left to it
    (PostgreSQL cannot split rows out of a default partition on its own), with a warning:
    its rows are pruned in batches, like SQLite's."""
    if not is_partitioned(conn):
        return []
    made = []
    for table in TABLES:
        have = set(existing(conn, table))
        for month in months(first, last):
            if month in have:
                continue
            try:
                with conn.begin_nested():
                    conn.exec_driver_sql(create_sql(table, month))
            except DBAPIError as exc:
                log.warning("no partition %s made: %s", name(table, month),
                            (str(getattr(exc, "orig", exc)).splitlines() or [""])[0])
                continue
            made.append(name(table, month))
    return made


def ensure_ahead(conn: Connection) -> list[str]:
    """This month's partitions and MONTHS_AHEAD more, by the wall clock: the one ids are
    made from, whatever clock the rest of the product is given."""
    now = datetime.now(UTC)
    last = month_of(now)
    for _ in range(MONTHS_AHEAD):
        last = next_month(last)
    return ensure(conn, month_of(now), last)
