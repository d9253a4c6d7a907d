"""Every row of every table, to show that a request wrote nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import Base, RateCounter


def all_rows(runtime: Runtime, *, except_tables: tuple[str, ...] = ("rate_counters",)
             ) -> dict[str, list[str]]:
    with session_scope(runtime.sessions) as session:
        return {table.name: sorted(repr(tuple(row)) for row in session.execute(select(table)))
                for table in Base.metadata.sorted_tables if table.name not in except_tables}


def counter_rows(runtime: Runtime, prefix: str = "") -> int:
    with session_scope(runtime.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(RateCounter)
                                  .where(RateCounter.key.startswith(prefix))) or 0)
