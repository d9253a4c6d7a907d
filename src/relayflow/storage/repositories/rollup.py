"""Hourly rollups of runs and of delivery attempts: folding the triggers' changes into
them, and counting from them.

Triggers on workflow_runs and delivery_attempts (migrations 0011, 0012 and 0020) append
one row to a changes table per row inserted, changing status or fingerprint, or deleted,
in the transaction that did it, whatever code wrote it: a rollup is never behind what a
reader can see. `fold` moves the changes into a detail table (by workflow, and channel for
attempts), a totals table (the workspace) and a failures table (by cause: the rows with a
fingerprint), in one transaction; a count reads the folded rows and the changes
not folded yet in one statement, so one snapshot: a fold committing meanwhile is seen
entirely or not at all.

Counts come by whole UTC hour (epoch seconds of the hour's start). The repositories count
the hours a window starts or ends inside, and a contact's rows, from the rows themselves
(an index range each)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from sqlalchemy import Engine, TextClause, Uuid, bindparam, text
from sqlalchemy.orm import Session

# The SQL here is formatted from this module's constants (table and column names) only;
# every value is a bound parameter (hence bandit's B608 waived line by line).
HOUR = 3600
# Changes moved per fold: a fold is one short transaction even after a backlog.
FOLD_BATCH = 20_000
# The workflow of an attempt that has none (a test send), in the attempts' detail table.
NO_WORKFLOW = uuid.UUID(int=0)


@dataclass(frozen=True, slots=True)
class Rollup:
    changes: str  # the triggers' table
    detail: str  # keyed by workspace, `keys`, hour and status
    totals: str  # keyed by workspace, `total_keys`, hour and status
    failures: str  # keyed by workspace, hour and fingerprint (a failure's cause)
    keys: tuple[str, ...]
    total_keys: tuple[str, ...]
    measure: str  # the count's column


RUNS = Rollup("run_count_changes", "run_counts", "run_totals", "run_failure_counts",
              ("workflow_id",), (), "runs")
ATTEMPTS = Rollup("delivery_count_changes", "delivery_counts", "delivery_totals",
                  "delivery_failure_counts", ("workflow_id", "channel"), ("channel",),
                  "attempts")
# Which of a key's values are UUIDs (bound as such: SQLite stores them as hex text).
_UUID_KEYS = {"workspace_id", "workflow_id"}
# The failures tables' key and count.
_CAUSE = ("hour", "fingerprint")
_FAILURES = "failures"


def _moved(keys: tuple[str, ...], value: str, source: str, where: str) -> str:
    """Each change of `source` as +1 for the `value` (status or fingerprint) entered and
    -1 for the one left, with the change's `keys`."""
    columns = ", ".join(("workspace_id", *keys))
    return f"""SELECT {columns}, new_{value} AS {value}, 1 AS n FROM {source}
               WHERE {where} new_{value} IS NOT NULL
               UNION ALL
               SELECT {columns}, old_{value}, -1 FROM {source}
               WHERE {where} old_{value} IS NOT NULL"""  # nosec B608


def _upsert(table: str, keys: tuple[str, ...], measure: str, changes: str) -> str:
    columns = ", ".join(("workspace_id", *keys))
    return f"""INSERT INTO {table} AS r ({columns}, {measure})
               SELECT {columns}, sum(n) FROM ({changes}) AS c
               GROUP BY {columns} ORDER BY {columns}
               ON CONFLICT ({columns})
               DO UPDATE SET {measure} = r.{measure} + excluded.{measure}"""  # nosec B608


def _upserts(rollup: Rollup, source: str, where: str) -> tuple[str, str, str]:
    """The upserts of the changes in `source` into the detail, totals and failures."""
    by_status = _moved((*rollup.keys, "hour"), "status", source, where)
    return (_upsert(rollup.detail, (*rollup.keys, "hour", "status"), rollup.measure,
                    by_status),
            _upsert(rollup.totals, (*rollup.total_keys, "hour", "status"), rollup.measure,
                    by_status),
            _upsert(rollup.failures, _CAUSE, _FAILURES,
                    _moved(("hour",), "fingerprint", source, where)))


def _fold_postgres(rollup: Rollup) -> TextClause:
    """One statement, so one snapshot: the rows deleted are exactly the rows added up."""
    keys = ", ".join(("workspace_id", *rollup.keys, "hour"))
    detail, totals, failures = _upserts(rollup, "moved", "")
    return text(f"""
        WITH moved AS (
            DELETE FROM {rollup.changes} WHERE id IN (
                SELECT id FROM {rollup.changes} ORDER BY id LIMIT :limit)
            RETURNING {keys}, old_status, new_status, old_fingerprint, new_fingerprint
        ), detail AS ({detail}
        ), totals AS ({totals}
        ), failures AS ({failures}
        ) SELECT count(*) FROM moved""")  # nosec B608


def _fold_sqlite(rollup: Rollup) -> tuple[TextClause, ...]:
    """SQLite has one writer at a time: the transaction's statements see one state."""
    return (*(text(upsert) for upsert in _upserts(rollup, rollup.changes, "id <= :last AND")),
            text(f"DELETE FROM {rollup.changes} WHERE id <= :last"))  # nosec B608


# pg_try_advisory_xact_lock's key for folds: any constant no other lock of ours uses.
_FOLD_LOCK = 0x726F6C6C  # "roll"


def fold(session: Session, *, limit: int = FOLD_BATCH) -> int:
    """Fold up to `limit` of the oldest changes of each rollup; how many were folded.
    On PostgreSQL folds exclude each other (a transaction-scoped advisory lock): two at
    once would update the same rollup rows."""
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres and not session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"),
                                       {"key": _FOLD_LOCK}):
        return 0
    folded = 0
    for rollup in (RUNS, ATTEMPTS):
        if postgres:
            if session.scalar(text(f"SELECT 1 FROM {rollup.changes} LIMIT 1")) is not None:  # nosec B608
                folded += int(session.scalar(_fold_postgres(rollup), {"limit": limit}) or 0)
            continue
        last = session.scalar(text(
            f"SELECT max(id) FROM (SELECT id FROM {rollup.changes} ORDER BY id LIMIT :limit)"),  # nosec B608
            {"limit": limit})
        if last is not None:
            *upserts, delete = _fold_sqlite(rollup)
            for statement in upserts:
                session.execute(statement, {"last": last})
            folded += session.execute(delete, {"last": last}).rowcount  # type: ignore[attr-defined]
    return folded


# How the triggers (migrations 0011 and 0012) file a row: its hour, and its workflow.
_HOUR = "(floor(extract(epoch FROM created_at) / 3600) * 3600)::bigint"
_SOURCE = {"workflow_id": f"COALESCE(workflow_id, '{NO_WORKFLOW}'::uuid)", "channel": "channel"}


def subtract(session: Session, rollup: Rollup, source: str) -> dict[uuid.UUID, int]:
    """PostgreSQL: take every row of the table `source` (a partition about to be dropped,
    which fires no trigger) out of the rollup, its failures by cause included; how many
    went, by workspace. The changes not folded yet need nothing: a count adds them to the
    rollup, and the rows they count are counted out here as they are now. Rollup rows
    left at zero are deleted, under the fold's lock, so that no fold adds to one
    meanwhile."""
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _FOLD_LOCK})
    keys = ", ".join(f"{_SOURCE[key]} AS {key}" for key in rollup.keys)
    grouped = ", ".join(str(n) for n in range(1, len(rollup.keys) + 4))
    by_status = (*rollup.keys, "hour", "status")
    by_total = (*rollup.total_keys, "hour", "status")
    gone = session.execute(text(f"""
        WITH gone AS (
            SELECT workspace_id, {keys}, {_HOUR} AS hour, status, -count(*) AS n
            FROM {source} GROUP BY {grouped}
        ), failed AS (
            SELECT workspace_id, {_HOUR} AS hour, fingerprint, -count(*) AS n
            FROM {source} WHERE fingerprint IS NOT NULL GROUP BY 1, 2, 3
        ), detail AS ({_upsert(rollup.detail, by_status, rollup.measure, "SELECT * FROM gone")}
        ), totals AS ({_upsert(rollup.totals, by_total, rollup.measure, "SELECT * FROM gone")}
        ), failures AS ({_upsert(rollup.failures, _CAUSE, _FAILURES, "SELECT * FROM failed")}
        ) SELECT workspace_id, -sum(n) FROM gone GROUP BY workspace_id""")).all()  # nosec B608
    for table, measure in ((rollup.detail, rollup.measure), (rollup.totals, rollup.measure),
                           (rollup.failures, _FAILURES)):
        session.execute(text(f"DELETE FROM {table} WHERE {measure} = 0"))  # nosec B608
    return {workspace_id: int(n) for workspace_id, n in gone}


def vacuum(engine: Engine) -> None:
    """PostgreSQL: reclaim the changes tables' deleted rows. A fold deletes every row it
    moves, and a count reads the changes tables whole, dead rows included until a vacuum:
    after 1.65 million changes folded, each read took 36 ms instead of 0.5. Autovacuum
    does this on its own, when it is on; workers also do it after every 20,000 changes
    they fold. SQLite frees deleted rows' space at once: nothing to do."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"VACUUM (ANALYZE) {RUNS.changes}, {ATTEMPTS.changes}")


class Window(Protocol):
    """What a list filter has in common with every other: the window and a contact."""

    @property
    def workspace_id(self) -> uuid.UUID: ...
    @property
    def statuses(self) -> Sequence[str]: ...
    @property
    def contact_id(self) -> uuid.UUID | None: ...
    @property
    def created_from(self) -> datetime | None: ...
    @property
    def created_to(self) -> datetime | None: ...


F = TypeVar("F", bound=Window)


def whole_hours(f: Window) -> tuple[int | None, int | None] | None:
    """The whole UTC hours inside the filter's window (epoch seconds of the first and of
    the end; None: unbounded), or None when a rollup cannot answer: a contact filter (a
    contact's rows are few and indexed), a cause of failure (likewise), a search (no
    rollup knows what runs hold), or a window inside a single hour."""
    if f.contact_id is not None or any(getattr(f, name, None) is not None
                                       for name in ("fingerprint", "ids", "search")):
        return None
    first = None if f.created_from is None else -(-math.ceil(f.created_from.timestamp())
                                                  // HOUR) * HOUR
    end = None if f.created_to is None else math.floor(f.created_to.timestamp()) // HOUR * HOUR
    if first is not None and end is not None and first >= end:
        return None
    return first, end


def edges(f: F, first: int | None, end: int | None) -> list[F]:
    """The filter over the parts of its window outside its whole hours: at most one at
    each end, to be counted from the rows."""
    found = []
    if f.created_from is not None and first is not None:
        to = datetime.fromtimestamp(first, UTC)
        if f.created_from < to:
            found.append(replace(f, created_to=to))  # type: ignore[type-var]
    if f.created_to is not None and end is not None:
        start = datetime.fromtimestamp(end, UTC)
        if start < f.created_to:
            found.append(replace(f, created_from=start))  # type: ignore[type-var]
    return found


def by_status(session: Session, rollup: Rollup, f: F, equal: dict[str, object],
              from_rows: Callable[[F], dict[str, int]]) -> dict[str, int]:
    """Rows by status under the filter `f`: its whole hours from the rollup (keys as
    `equal`), and what the rollup cannot answer (a contact, the window's partial hours)
    counted by `from_rows`."""
    window = whole_hours(f)
    if window is None:
        return from_rows(f)
    first, end = window
    counts = {status: n for _, status, n in count(
        session, rollup, f.workspace_id, equal=equal, first=first, end=end)}
    for edge in edges(f, first, end):
        for status, n in from_rows(edge).items():
            counts[status] = counts.get(status, 0) + n
    return {s: n for s, n in counts.items() if n and (not f.statuses or s in f.statuses)}


def count(session: Session, rollup: Rollup, workspace_id: uuid.UUID, *,
          equal: dict[str, object] | None = None, first: int | None = None,
          end: int | None = None, by_hour: bool = False) -> list[tuple[int, str, int]]:
    """(hour, status, count) of the rows created in the whole hours from `first` to
    before `end` (epoch seconds, multiples of an hour; None: unbounded) whose keys equal
    `equal` (keys of the rollup), summed over all hours (hour 0) unless `by_hour`.
    Statuses with no row are absent."""
    equal = equal or {}
    table = rollup.totals if set(equal) <= set(rollup.total_keys) else rollup.detail
    where = "workspace_id = :workspace_id"
    params: dict[str, object] = {"workspace_id": workspace_id}
    binds = [bindparam("workspace_id", type_=_UUID)]
    for key, value in equal.items():
        if key not in rollup.keys:
            raise ValueError(f"{rollup.detail} has no key {key!r}")
        where += f" AND {key} = :{key}"
        params[key] = value
        if key in _UUID_KEYS:
            binds.append(bindparam(key, type_=_UUID))
    if first is not None:
        where += " AND hour >= :first"
        params["first"] = first
    if end is not None:
        where += " AND hour < :end"
        params["end"] = end
    hour = "hour" if by_hour else "0"
    sql = f"""
        SELECT {hour} AS h, status, sum(n) FROM (
            SELECT hour, status, {rollup.measure} AS n FROM {table} WHERE {where}
            UNION ALL
            SELECT hour, new_status, 1 FROM {rollup.changes}
            WHERE {where} AND new_status IS NOT NULL
            UNION ALL
            SELECT hour, old_status, -1 FROM {rollup.changes}
            WHERE {where} AND old_status IS NOT NULL
        ) AS counted GROUP BY h, status"""  # nosec B608
    return [(int(h), status, int(n)) for h, status, n in
            session.execute(text(sql).bindparams(*binds), params) if n]


def failures(session: Session, rollup: Rollup, workspace_id: uuid.UUID, *, first: int,
             end: int, fingerprints: Sequence[str] | None = None, origin: int = 0,
             width: int = HOUR) -> list[tuple[int, str, int]]:
    """(bar, fingerprint, count) of the failures created in the whole hours from `first`
    to before `end` (epoch seconds, multiples of an hour), summed in bars of `width`
    seconds (whole hours) counted from `origin` (at most `first`), of the given causes only
    when `fingerprints` is not None. The database sums them: a month at ten million runs
    is 20,000 rows of hours, and 800 of bars. Bars and causes with none are absent."""
    if origin > first or width % HOUR:
        raise ValueError("bars are whole hours, from at most the first hour")
    binds = [bindparam("workspace_id", type_=_UUID)]
    params: dict[str, object] = {"workspace_id": workspace_id, "first": first, "end": end,
                                 "origin": origin, "width": width}
    if fingerprints is not None:
        if not fingerprints:
            return []
        binds.append(bindparam("fingerprints", expanding=True))
        params["fingerprints"] = list(fingerprints)

    def where(column: str) -> str:
        return (f"workspace_id = :workspace_id AND hour >= :first AND hour < :end "
                f"AND {column} " + ("IS NOT NULL" if fingerprints is None
                                    else "IN :fingerprints"))

    # Both databases divide two integers whole, and every hour here is at least `origin`.
    sql = f"""
        SELECT (hour - :origin) / :width AS bar, fingerprint, sum(n) FROM (
            SELECT hour, fingerprint, {_FAILURES} AS n FROM {rollup.failures}
            WHERE {where("fingerprint")}
            UNION ALL
            SELECT hour, new_fingerprint, 1 FROM {rollup.changes}
            WHERE {where("new_fingerprint")}
            UNION ALL
            SELECT hour, old_fingerprint, -1 FROM {rollup.changes}
            WHERE {where("old_fingerprint")}
        ) AS counted GROUP BY bar, fingerprint"""  # nosec B608
    return [(int(h), name, int(n)) for h, name, n in
            session.execute(text(sql).bindparams(*binds), params) if n]


def pending(session: Session, rollup: Rollup) -> int:
    """Changes not folded yet."""
    return int(session.scalar(text(f"SELECT count(*) FROM {rollup.changes}")) or 0)  # nosec B608


_UUID = Uuid()
