"""The hourly rollup of runs (models.RunCount, RunTotal): folding the triggers' changes
into it, and counting from it.

The triggers of workflow_runs (migration 0011) append one row to run_count_changes per
run inserted, changing status or deleted, in the transaction that did it: the rollup is
never behind what a reader can see. `fold` moves those rows into run_counts (by workflow)
and run_totals (the workspace), in one transaction; a count reads both the folded rows
and the changes not folded yet, in one statement, so one snapshot: a fold committing
meanwhile is seen entirely or not at all.

Counts come by whole UTC hour. A window that starts or ends inside an hour takes that
hour's runs from the runs table itself (an index range over an hour); a chart whose
buckets start inside hours (a zone half an hour off UTC) is counted there entirely
(repositories/run.py decides)."""

from __future__ import annotations

import uuid

from sqlalchemy import TextClause, Uuid, bindparam, text
from sqlalchemy.orm import Session

HOUR = 3600
_UUID = Uuid()
# Changes moved per fold: a fold is one short transaction even after a backlog.
FOLD_BATCH = 20_000

_FOLD_POSTGRES = text("""
WITH moved AS (
    DELETE FROM run_count_changes WHERE id IN (
        SELECT id FROM run_count_changes ORDER BY id LIMIT :limit)
    RETURNING workspace_id, workflow_id, hour, old_status, new_status
), changes AS (
    SELECT workspace_id, workflow_id, hour, new_status AS status, 1 AS runs
    FROM moved WHERE new_status IS NOT NULL
    UNION ALL
    SELECT workspace_id, workflow_id, hour, old_status, -1 FROM moved
    WHERE old_status IS NOT NULL
), by_workflow AS (
    INSERT INTO run_counts AS c (workspace_id, workflow_id, hour, status, runs)
    SELECT workspace_id, workflow_id, hour, status, sum(runs) FROM changes
    GROUP BY workspace_id, workflow_id, hour, status
    ORDER BY workspace_id, workflow_id, hour, status
    ON CONFLICT (workspace_id, workflow_id, hour, status)
    DO UPDATE SET runs = c.runs + excluded.runs
)
INSERT INTO run_totals AS t (workspace_id, hour, status, runs)
SELECT workspace_id, hour, status, sum(runs) FROM changes
GROUP BY workspace_id, hour, status ORDER BY workspace_id, hour, status
ON CONFLICT (workspace_id, hour, status) DO UPDATE SET runs = t.runs + excluded.runs
""")

# SQLite has one writer at a time, so the transaction's statements see one state.
_CHANGES_SQLITE = """
    SELECT workspace_id, workflow_id, hour, new_status AS status, 1 AS runs
    FROM run_count_changes WHERE id <= :last AND new_status IS NOT NULL
    UNION ALL
    SELECT workspace_id, workflow_id, hour, old_status, -1 FROM run_count_changes
    WHERE id <= :last AND old_status IS NOT NULL"""
_FOLD_SQLITE = (
    text(f"""INSERT INTO run_counts (workspace_id, workflow_id, hour, status, runs)
             SELECT workspace_id, workflow_id, hour, status, sum(runs)
             FROM ({_CHANGES_SQLITE}) GROUP BY 1, 2, 3, 4
             ON CONFLICT (workspace_id, workflow_id, hour, status)
             DO UPDATE SET runs = runs + excluded.runs"""),
    text(f"""INSERT INTO run_totals (workspace_id, hour, status, runs)
             SELECT workspace_id, hour, status, sum(runs)
             FROM ({_CHANGES_SQLITE}) GROUP BY 1, 2, 3
             ON CONFLICT (workspace_id, hour, status)
             DO UPDATE SET runs = runs + excluded.runs"""),
    text("DELETE FROM run_count_changes WHERE id <= :last"),
)


def fold(session: Session, *, limit: int = FOLD_BATCH) -> bool:
    """Fold up to `limit` of the oldest changes into the rollup; whether any were there.
    On PostgreSQL folds exclude each other (a transaction-scoped advisory lock): two at
    once would update the same rollup rows in different orders."""
    if session.get_bind().dialect.name == "postgresql":
        if not session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"),
                              {"key": _FOLD_LOCK}):
            return False
        if session.scalar(text("SELECT 1 FROM run_count_changes LIMIT 1")) is None:
            return False
        session.execute(_FOLD_POSTGRES, {"limit": limit})
        return True
    last = session.scalar(text(
        "SELECT max(id) FROM (SELECT id FROM run_count_changes ORDER BY id LIMIT :limit)"),
        {"limit": limit})
    if last is None:
        return False
    for statement in _FOLD_SQLITE:
        session.execute(statement, {"last": last})
    return True


# pg_try_advisory_xact_lock's key for folds: any constant no other lock of ours uses.
_FOLD_LOCK = 0x72756E73  # "runs"


def _where(workflow_id: uuid.UUID | None, first: int | None, end: int | None) -> str:
    where = "workspace_id = :workspace_id"
    if workflow_id is not None:
        where += " AND workflow_id = :workflow_id"
    if first is not None:
        where += " AND hour >= :first"
    if end is not None:
        where += " AND hour < :end"
    return where


def by_hour(session: Session, workspace_id: uuid.UUID, *, workflow_id: uuid.UUID | None = None,
            first: int | None = None, end: int | None = None) -> list[tuple[int, str, int]]:
    """(hour, status, runs) for runs created in the whole hours from `first` to before
    `end` (epoch seconds, multiples of an hour; None: unbounded), of one workflow or all.
    Statuses no run is in are absent."""
    return [(int(hour), status, int(runs)) for hour, status, runs in
            session.execute(*_query(workspace_id, workflow_id, first, end, by_hour=True))
            if runs]


def by_status(session: Session, workspace_id: uuid.UUID, *,
              workflow_id: uuid.UUID | None = None, first: int | None = None,
              end: int | None = None) -> dict[str, int]:
    """Runs by status, created in the whole hours from `first` to before `end`."""
    return {status: int(runs) for _, status, runs in
            session.execute(*_query(workspace_id, workflow_id, first, end, by_hour=False))
            if runs}


def _query(workspace_id: uuid.UUID, workflow_id: uuid.UUID | None, first: int | None,
           end: int | None, *, by_hour: bool) -> tuple[TextClause, dict[str, object]]:
    where = _where(workflow_id, first, end)
    table = "run_totals" if workflow_id is None else "run_counts"
    hour = "hour" if by_hour else "0"
    sql = f"""
        SELECT {hour} AS h, status, sum(runs) FROM (
            SELECT hour, status, runs FROM {table} WHERE {where}
            UNION ALL
            SELECT hour, new_status, 1 FROM run_count_changes
            WHERE {where} AND new_status IS NOT NULL
            UNION ALL
            SELECT hour, old_status, -1 FROM run_count_changes
            WHERE {where} AND old_status IS NOT NULL
        ) AS counted GROUP BY h, status"""
    params: dict[str, object] = {"workspace_id": workspace_id}
    binds = [bindparam("workspace_id", type_=_UUID)]
    if workflow_id is not None:
        params["workflow_id"] = workflow_id
        binds.append(bindparam("workflow_id", type_=_UUID))
    if first is not None:
        params["first"] = first
    if end is not None:
        params["end"] = end
    return text(sql).bindparams(*binds), params


def pending(session: Session) -> int:
    """Changes not folded yet (for tests and the operations page)."""
    return int(session.scalar(text("SELECT count(*) FROM run_count_changes")) or 0)
