"""`relayflow prune`: keep history for a while, then let it go.

Each workspace keeps its history for its own retention (Workspace.retention_days, else the
age the command is given) and its failures for their own (failed_retention_days, else the
same): failed runs, and failed or bounced deliveries, are often worth keeping longer. Runs
still PENDING or RUNNING and deliveries still QUEUED are never touched.

On PostgreSQL, a month whose partitions hold nothing to keep leaves first, whole
(storage/repositories/retention.drop_month): three tables dropped, whatever their size.
The rest goes in batches: the walk goes through each workspace's history oldest first
along the lists' indexes, BATCH rows at a time (on SQLite, as many as fit in SQLITE_HOLD
seconds), each batch deleted in its own short transaction and followed by a rest (REST): a
prune never holds a long lock nor most of the database's time, and on SQLite the server's
own writes go first (db.give_way) and the WAL is copied back in the rest (db.checkpoint).
A dry run walks the same way and counts, and names the months that would go whole.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from relayflow.engine.durations import parse_duration
from relayflow.errors import InvalidInput, NotFound
from relayflow.services import frequency as frequency_service
from relayflow.services import rate_limit as rate_limit_service
from relayflow.services import workspace as workspace_service
from relayflow.services.runtime import Runtime
from relayflow.storage import partitions
from relayflow.storage.db import (
    checkpoint,
    is_lock_timeout,
    is_postgres,
    read_scope,
    session_scope,
)
from relayflow.storage.repositories import retention as retention_repo
from relayflow.storage.repositories import rollup
from relayflow.storage.repositories import workspace as workspace_repo
from relayflow.storage.repositories.retention import Batch, Cutoffs

log = logging.getLogger(__name__)

BATCH = 200
# On SQLite a batch holds the one write lock, which every request that writes waits for (an
# API call counts against its key's rate), so a batch there is sized by time: the first has
# SQLITE_BATCH rows, each next one as many as its forerunner deleted in SQLITE_HOLD seconds
# (BATCH at most). A request that arrives mid-batch then waits a few milliseconds, on any
# machine and whatever a run's size. At 1,000,000 runs the API's p95 during a prune was 3.5
# times idle with batches of 200 rows, 2.15 with 50, 1.3 to 1.5 sized by time with a
# checkpoint in each rest (docs/scaling.md).
SQLITE_BATCH = 50
SQLITE_HOLD = 0.005
# After each batch it deletes, a prune rests this many times as long as the batch took, so
# that it never holds the database (SQLite's single write lock above all) more than half
# of the time: the requests and workers beside it keep their pace.
REST = 1.0
MAX_RETENTION_DAYS = 36_500
# A month's drop that cannot get its locks (a long read holds the table) is tried again
# this many times, DROP_PAUSE seconds apart; then its rows go in batches.
DROP_TRIES = 5
DROP_PAUSE = 2.0


@dataclass(slots=True)
class Pruned:
    cutoff: datetime  # the command's own; a workspace's retention may move its own
    dry_run: bool
    runs: int = 0
    attempts: int = 0
    # slug -> (runs, attempts), for each workspace that had something to prune
    by_workspace: dict[str, tuple[int, int]] = field(default_factory=dict)
    # PostgreSQL: the partitions dropped whole (or, in a dry run, that would be)
    months: list[Dropped] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Dropped:
    partition: str
    rows: int | None = None  # None in a dry run
    seconds: float | None = None


def prune(runtime: Runtime, *, older_than: str, dry_run: bool = False,
          progress: Callable[[Pruned], None] | None = None) -> Pruned:
    """Delete (or with `dry_run`, count) the finished history every workspace's retention
    lets go, `older_than` (e.g. `90d`) where a workspace sets none. `progress` is called
    after each batch."""
    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    now = runtime.clock()
    result = Pruned(cutoff=now - age, dry_run=dry_run)
    with read_scope(runtime.sessions) as session:
        workspaces = [(w.slug, cutoffs_of(w.id, w.retention_days, w.failed_retention_days,
                                          now=now, default=age))
                      for w in workspace_repo.list_all(session)]
    if not dry_run:
        with session_scope(runtime.sessions) as session:  # counters whose window has passed
            rate_limit_service.prune(session, now=now)
            frequency_service.forget_old(session, now=now)
            partitions.ensure_ahead(session.connection())
    slugs = {cutoffs.workspace_id: slug for slug, cutoffs in workspaces}
    every = [cutoffs for _, cutoffs in workspaces]
    for table in ("workflow_runs", "delivery_attempts"):
        _drop_months(runtime.sessions, table, every, slugs, result, progress)
    for slug, cutoffs in workspaces:
        runs = _walk(runtime.sessions, cutoffs, retention_repo.runs_batch,
                     retention_repo.delete_runs, dry_run, lambda n: _add(result, n, 0, progress))
        attempts = _walk(runtime.sessions, cutoffs, retention_repo.attempts_batch,
                         retention_repo.delete_attempts, dry_run,
                         lambda n: _add(result, 0, n, progress))
        _tally(result, slug, runs, attempts)
        if not dry_run:
            with session_scope(runtime.sessions) as session:
                retention_repo.delete_trigger_records(session, cutoffs)
    return result


def _drop_months(sessions: sessionmaker[Session], table: str, every: list[Cutoffs],
                 slugs: dict[uuid.UUID, str], result: Pruned,
                 progress: Callable[[Pruned], None] | None) -> None:
    """Drop (or in a dry run, name) the months of `table` that may go whole."""
    with read_scope(sessions) as session:
        found = retention_repo.months_to_drop(session, table, every)
    for month in found:
        name = partitions.name(table, month)
        if result.dry_run:
            result.months.append(Dropped(name))
            continue
        started = time.monotonic()
        gone = _drop(sessions, table, month, every)
        if gone is None:
            continue
        result.months.append(Dropped(name, sum(gone.values()), time.monotonic() - started))
        for workspace_id, n in gone.items():
            runs, attempts = (n, 0) if table == "workflow_runs" else (0, n)
            _tally(result, slugs.get(workspace_id, str(workspace_id)), runs, attempts)
            _add(result, runs, attempts, progress)


def _drop(sessions: sessionmaker[Session], table: str, month: date,
          every: list[Cutoffs]) -> dict[uuid.UUID, int] | None:
    for _ in range(DROP_TRIES):
        try:
            with session_scope(sessions) as session:
                return retention_repo.drop_month(session, table, month, every)
        except DBAPIError as exc:
            if not is_lock_timeout(exc):
                raise
        time.sleep(DROP_PAUSE)
    log.warning("%s not dropped: its locks were not granted in %d tries; its rows go in "
                "batches", partitions.name(table, month), DROP_TRIES)
    return None


def _tally(result: Pruned, slug: str, runs: int, attempts: int) -> None:
    if runs or attempts:
        before = result.by_workspace.get(slug, (0, 0))
        result.by_workspace[slug] = (before[0] + runs, before[1] + attempts)


def make_months(sessions: sessionmaker[Session]) -> list[str]:
    """PostgreSQL: make the partitions of this month and the next ones that are missing
    (storage/partitions.py); their names. Workers call it once an hour."""
    if sessions.kw["bind"].dialect.name != "postgresql":
        return []
    with session_scope(sessions) as session:
        return partitions.ensure_ahead(session.connection())


def cutoffs_of(workspace_id: uuid.UUID, retention_days: int | None,
               failed_retention_days: int | None, *, now: datetime,
               default: timedelta) -> Cutoffs:
    """What of a workspace may go at `now`: its retention or else `default`, and its
    failures' retention or else the same."""
    kept = now - (timedelta(days=retention_days) if retention_days else default)
    failed = now - timedelta(days=failed_retention_days) if failed_retention_days else kept
    return Cutoffs(workspace_id=workspace_id, kept=kept, failed=failed)


def _add(result: Pruned, runs: int, attempts: int,
         progress: Callable[[Pruned], None] | None) -> None:
    result.runs += runs
    result.attempts += attempts
    if progress is not None:
        progress(result)


def _walk(sessions: sessionmaker[Session], cutoffs: Cutoffs,
          batch: Callable[..., Batch], remove: Callable[..., None], dry_run: bool,
          counted: Callable[[int], None]) -> int:
    """Walk one workspace's runs or attempts; how many went (or would)."""
    total, after = 0, None
    engine = sessions.kw["bind"]
    timed = not is_postgres(engine)
    size = SQLITE_BATCH if timed else BATCH
    while True:
        if dry_run:
            with read_scope(sessions) as session:
                found = batch(session, cutoffs, after=after, limit=size)
        else:
            with session_scope(sessions) as session:
                session.connection()  # BEGIN: on SQLite, the wait for the write lock
                holding = time.monotonic()
                found = batch(session, cutoffs, after=after, limit=size)
                remove(session, found.gone)
                # The deletes' count changes, folded at once: counts read the changes not
                # yet folded, and workers may not be running to fold them.
                rollup.fold(session)
            ended = time.monotonic()
            if found.gone:
                if timed:
                    size = next_size(len(found.gone), ended - holding)
                    checkpoint(engine)
                time.sleep((ended - holding) * REST)
        total += len(found.gone)
        counted(len(found.gone))
        after = found.following
        if after is None:
            return total


def next_size(rows: int, seconds: float) -> int:
    """SQLite: how many rows the next batch deletes, so that it holds the write lock about
    SQLITE_HOLD seconds, if it goes as fast as the one that deleted `rows` in `seconds`."""
    if seconds <= 0:
        return BATCH
    return max(1, min(BATCH, int(rows * SQLITE_HOLD / seconds)))


@dataclass(frozen=True, slots=True)
class Retention:
    """Days a workspace keeps its history (None: what `prune --older-than` says) and its
    failures (None: as long as the rest)."""

    days: int | None
    failed_days: int | None


def show(session: Session, *, workspace_id: uuid.UUID) -> Retention:
    workspace = workspace_repo.get(session, workspace_id)
    if workspace is None:
        raise NotFound("no such workspace")
    return Retention(workspace.retention_days, workspace.failed_retention_days)


def put(session: Session, *, workspace_id: uuid.UUID, days: int | None,
        failed_days: int | None, now: datetime, actor: str = "system") -> Retention:
    """Validate and set the workspace's retention (audited as `retention.set`)."""
    problems = [f"retention {name} must be a whole number from 1 to {MAX_RETENTION_DAYS}"
                for value, name in ((days, "days"), (failed_days, "failed days"))
                if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                          or not 1 <= value <= MAX_RETENTION_DAYS)]
    if problems:
        raise InvalidInput("; ".join(problems))
    workspace = workspace_repo.get(session, workspace_id)
    if workspace is None:
        raise NotFound("no such workspace")
    workspace.retention_days, workspace.failed_retention_days = days, failed_days
    workspace_service.audit(session, workspace_id=workspace_id, actor=actor,
                            action="retention.set", target_type="retention",
                            target_id="history", now=now,
                            detail={"days": days, "failed_days": failed_days})
    return Retention(days, failed_days)
