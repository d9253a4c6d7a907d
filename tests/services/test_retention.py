"""`relayflow prune` by each workspace's retention: failures kept longer where a workspace
says so, nothing still open touched, a dry run that counts exactly what a prune then
deletes, a walk in batches that passes over what stays, and counts that stay exact."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select, update

from relayflow.engine.status import DeliveryStatus, RunStatus
from relayflow.errors import InvalidInput, NotFound
from relayflow.services import retention
from relayflow.services import run as run_service
from relayflow.services import workflow as workflow_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import read_scope, session_scope
from relayflow.storage.models import DeliveryAttempt, RunStep, WorkflowRun
from relayflow.storage.repositories import rollup
from relayflow.storage.repositories import run as run_repo
from relayflow.storage.repositories.run import RunFilter
from tests.conftest import WorkspaceHandle, make_workspace
from tests.support.flows import install

FLOW = {"key": "kept", "trigger": {"type": "manual"}, "start": "done",
        "nodes": {"done": {"type": "END"}}}


def _runs(runtime: Runtime, workspace: WorkspaceHandle,
          specs: list[tuple[int, RunStatus]]) -> list[uuid.UUID]:
    """A run per (age in days, status), finished an hour after it began (unless still in
    flight), each with its first step."""
    install(runtime, workspace.id, FLOW)
    now, ids = runtime.clock(), []
    with session_scope(runtime.sessions) as session:
        workflow = workflow_service.get(session, workspace_id=workspace.id, key="kept")
        runs, steps = [], []
        for days, _status in specs:
            at = now - timedelta(days=days)
            run, step, _ = run_service.new_run_rows(
                workspace_id=workspace.id, workflow_id=workflow.id,
                version_id=workflow.current_version_id, contact_id=None,
                trigger_type="manual", event={}, now=at)
            runs.append(run)
            steps.append(step)
            ids.append(run["id"])
        run_repo.add_new(session, runs=runs, steps=steps)
        for run_id, (days, status) in zip(ids, specs, strict=True):
            finished = (now - timedelta(days=days) + timedelta(hours=1)
                        if status not in (RunStatus.PENDING, RunStatus.RUNNING) else None)
            session.execute(update(WorkflowRun).where(WorkflowRun.id == run_id)
                            .values(status=status, finished_at=finished))
    return ids


def _attempts(runtime: Runtime, workspace: WorkspaceHandle,
              specs: list[tuple[int, DeliveryStatus]]) -> list[uuid.UUID]:
    now = runtime.clock()
    rows = [{"id": uuid.uuid4(), "workspace_id": workspace.id, "channel": "email",
             "provider": "outbox", "recipient": "a@example.com", "subject": "Hi", "body": "Hi",
             "attempt_number": 1, "created_at": now - timedelta(days=days), "status": status}
            for days, status in specs]
    with session_scope(runtime.sessions) as session:
        session.execute(insert(DeliveryAttempt), rows)
    return [row["id"] for row in rows]


def _left(runtime: Runtime, model: type, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    with read_scope(runtime.sessions) as session:
        return set(session.scalars(select(model.id).where(model.id.in_(ids))))


def _set(runtime: Runtime, workspace: WorkspaceHandle, days: int | None,
         failed_days: int | None) -> None:
    with session_scope(runtime.sessions) as session:
        retention.put(session, workspace_id=workspace.id, days=days, failed_days=failed_days,
                      now=runtime.clock(), actor="test")


def test_each_workspace_keeps_its_own_retention_and_failures_longer(
        runtime: Runtime, workspace: WorkspaceHandle) -> None:
    other = make_workspace(runtime, "globex")
    _set(runtime, workspace, days=30, failed_days=365)
    mine = _runs(runtime, workspace, [(40, RunStatus.COMPLETED), (40, RunStatus.CANCELED),
                                      (40, RunStatus.FAILED), (400, RunStatus.FAILED),
                                      (20, RunStatus.COMPLETED), (400, RunStatus.RUNNING),
                                      (400, RunStatus.PENDING)])
    theirs = _runs(runtime, other, [(40, RunStatus.COMPLETED), (100, RunStatus.COMPLETED),
                                    (100, RunStatus.FAILED)])
    attempts = _attempts(runtime, workspace, [
        (40, DeliveryStatus.DELIVERED), (40, DeliveryStatus.BOUNCED),
        (40, DeliveryStatus.FAILED), (400, DeliveryStatus.BOUNCED), (20, DeliveryStatus.SENT),
        (400, DeliveryStatus.QUEUED), (40, DeliveryStatus.SUPPRESSED)])

    result = retention.prune(runtime, older_than="90d")

    assert _left(runtime, WorkflowRun, mine) == {mine[2], mine[4], mine[5], mine[6]}
    assert _left(runtime, WorkflowRun, theirs) == {theirs[0]}  # 90 days, the command's
    assert _left(runtime, DeliveryAttempt, attempts) == {
        attempts[1], attempts[2], attempts[4], attempts[5]}
    with read_scope(runtime.sessions) as session:
        assert session.scalar(select(func.count()).select_from(RunStep).where(
            RunStep.run_id.in_([mine[0], mine[1], mine[3], theirs[1], theirs[2]]))) == 0
    assert (result.runs, result.attempts) == (5, 3)
    assert result.by_workspace == {"acme": (3, 3), "globex": (2, 0)}


def test_a_dry_run_counts_what_a_prune_then_deletes_and_deletes_nothing(
        runtime: Runtime, workspace: WorkspaceHandle) -> None:
    rng = random.Random(3)
    statuses = list(RunStatus)
    runs = _runs(runtime, workspace, [(rng.randint(1, 200), rng.choice(statuses))
                                      for _ in range(60)])
    attempts = _attempts(runtime, workspace, [
        (rng.randint(1, 200), rng.choice(list(DeliveryStatus))) for _ in range(40)])
    _set(runtime, workspace, days=None, failed_days=150)

    dry = retention.prune(runtime, older_than="90d", dry_run=True)

    assert _left(runtime, WorkflowRun, runs) == set(runs)
    assert _left(runtime, DeliveryAttempt, attempts) == set(attempts)
    assert dry.runs > 0
    assert dry.attempts > 0
    real = retention.prune(runtime, older_than="90d")
    assert (real.runs, real.attempts) == (dry.runs, dry.attempts)
    assert len(runs) - len(_left(runtime, WorkflowRun, runs)) == dry.runs
    assert retention.prune(runtime, older_than="90d", dry_run=True).runs == 0


def test_the_walk_passes_over_what_stays(runtime: Runtime, workspace: WorkspaceHandle,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 3: runs that must stay (in flight, failed and kept) lie between those that
    go, and every one that may go still does, in one prune."""
    monkeypatch.setattr(retention, "BATCH", 3)
    monkeypatch.setattr(retention, "SQLITE_BATCH", 3)
    _set(runtime, workspace, days=None, failed_days=365)
    specs = [(100 + i, [RunStatus.RUNNING, RunStatus.FAILED, RunStatus.COMPLETED][i % 3])
             for i in range(20)]
    runs = _runs(runtime, workspace, specs)
    seen: list[int] = []
    result = retention.prune(runtime, older_than="90d", progress=lambda p: seen.append(p.runs))
    going = [r for r, (_, s) in zip(runs, specs, strict=True) if s == RunStatus.COMPLETED]
    assert result.runs == len(going)
    assert _left(runtime, WorkflowRun, runs) == set(runs) - set(going)
    assert len(seen) >= 20 // 3  # progress after every batch
    with read_scope(runtime.sessions) as session:  # the counts follow the deletes
        counts = run_repo.count_by_status(session, RunFilter(workspace_id=workspace.id))
        assert counts == {"RUNNING": 7, "FAILED": 7}
        assert rollup.pending(session, rollup.RUNS) == 0  # folded by the prune itself


@pytest.mark.parametrize(("hold", "sqlite_batches"), [(0.0, [2, 1, 1, 1, 1, 1, 1]),
                                                    (3600.0, [2, 4, 2])])
def test_sqlite_sizes_its_batches_by_time(runtime: Runtime, workspace: WorkspaceHandle,
                                          monkeypatch: pytest.MonkeyPatch, hold: float,
                                          sqlite_batches: list[int]) -> None:
    """A batch holds SQLite's one write lock, which every API call waits for: there the first
    has SQLITE_BATCH rows and each next one as many as the one before deleted in SQLITE_HOLD
    seconds (BATCH at most); on PostgreSQL every batch has BATCH rows."""
    monkeypatch.setattr(retention, "BATCH", 4)
    monkeypatch.setattr(retention, "SQLITE_BATCH", 2)
    monkeypatch.setattr(retention, "SQLITE_HOLD", hold)
    runs = _runs(runtime, workspace, [(100 + i, RunStatus.COMPLETED) for i in range(8)])
    seen: list[int] = []
    retention.prune(runtime, older_than="90d", progress=lambda p: seen.append(p.runs))
    assert not _left(runtime, WorkflowRun, runs)
    batches = [after - before for before, after in zip([0, *seen], seen, strict=False)
               if after > before]
    assert batches == (sqlite_batches if runtime.dialect.name == "sqlite" else [4, 4])


@pytest.mark.parametrize(("rows", "seconds", "size"), [
    (50, 0.010, 25), (50, 0.0025, 100), (50, 0.0001, 200), (50, 3.0, 1), (7, 0.0, 200)])
def test_the_next_batch_fits_the_hold(rows: int, seconds: float, size: int) -> None:
    assert retention.SQLITE_HOLD == 0.005
    assert retention.next_size(rows, seconds) == size


@pytest.mark.parametrize(("days", "failed_days"), [(0, None), (-1, None), (None, 0),
                                                   (36_501, None), (None, 10**9)])
def test_a_retention_out_of_range_is_refused(runtime: Runtime, workspace: WorkspaceHandle,
                                             days: int | None, failed_days: int | None) -> None:
    with pytest.raises(InvalidInput, match="retention"):
        _set(runtime, workspace, days=days, failed_days=failed_days)


def test_an_unknown_workspace_is_refused(runtime: Runtime) -> None:
    with session_scope(runtime.sessions) as session, pytest.raises(NotFound):
        retention.put(session, workspace_id=uuid.uuid4(), days=30, failed_days=None,
                      now=runtime.clock())


def test_a_bad_age_is_refused_before_anything_is_deleted(runtime: Runtime,
                                                         workspace: WorkspaceHandle) -> None:
    runs = _runs(runtime, workspace, [(400, RunStatus.COMPLETED)])
    with pytest.raises(InvalidInput):
        retention.prune(runtime, older_than="a while")
    assert _left(runtime, WorkflowRun, runs) == set(runs)
