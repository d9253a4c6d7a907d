"""`relayflow prune`: keep history for a while, then let it go.

Each workspace keeps its history for its own retention (Workspace.retention_days, else the
age the command is given) and its failures for their own (failed_retention_days, else the
same): failed runs, and failed or bounced deliveries, are often worth keeping longer. Runs
still PENDING or RUNNING and deliveries still QUEUED are never touched.

The walk goes through each workspace's history oldest first along the lists' indexes, in
batches of BATCH rows, each deleted in its own short transaction and followed by a rest
(REST): a prune never holds a long lock nor most of the database's time, and on SQLite the
server's own writes go first (db.give_way). A dry run walks the same way and counts.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from relayflow.engine.durations import parse_duration
from relayflow.errors import InvalidInput, NotFound
from relayflow.services import frequency as frequency_service
from relayflow.services import rate_limit as rate_limit_service
from relayflow.services import workspace as workspace_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import read_scope, session_scope
from relayflow.storage.repositories import retention as retention_repo
from relayflow.storage.repositories import rollup
from relayflow.storage.repositories import workspace as workspace_repo
from relayflow.storage.repositories.retention import Batch, Cutoffs

BATCH = 200
# After each batch it deletes, a prune rests this many times as long as the batch took, so
# that it never holds the database (SQLite's single write lock above all) more than half
# of the time: the requests and workers beside it keep their pace.
REST = 1.0
MAX_RETENTION_DAYS = 36_500


@dataclass(slots=True)
class Pruned:
    cutoff: datetime  # the command's own; a workspace's retention may move its own
    dry_run: bool
    runs: int = 0
    attempts: int = 0
    # slug -> (runs, attempts), for each workspace that had something to prune
    by_workspace: dict[str, tuple[int, int]] = field(default_factory=dict)


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
    for slug, cutoffs in workspaces:
        runs = _walk(runtime.sessions, cutoffs, retention_repo.runs_batch,
                     retention_repo.delete_runs, dry_run, lambda n: _add(result, n, 0, progress))
        attempts = _walk(runtime.sessions, cutoffs, retention_repo.attempts_batch,
                         retention_repo.delete_attempts, dry_run,
                         lambda n: _add(result, 0, n, progress))
        if runs or attempts:
            result.by_workspace[slug] = (runs, attempts)
    return result


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
    while True:
        if dry_run:
            with read_scope(sessions) as session:
                found = batch(session, cutoffs, after=after, limit=BATCH)
        else:
            started = time.monotonic()
            with session_scope(sessions) as session:
                found = batch(session, cutoffs, after=after, limit=BATCH)
                remove(session, found.gone)
                # The deletes' count changes, folded at once: counts read the changes not
                # yet folded, and workers may not be running to fold them.
                rollup.fold(session)
            if found.gone:
                time.sleep((time.monotonic() - started) * REST)
        total += len(found.gone)
        counted(len(found.gone))
        after = found.following
        if after is None:
            return total


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
