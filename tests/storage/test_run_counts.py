"""The hourly rollup of runs: the triggers keep it exact whatever writes the runs, a fold
moves the changes without losing or doubling one, and every count and chart read from it
equals counting the runs themselves, under every filter, window edge and time zone."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, func, insert, select, text, update

from relayflow.engine.status import RunStatus
from relayflow.services import run as run_service
from relayflow.services import workflow as workflow_service
from relayflow.services.run_history import zone_offsets
from relayflow.services.runtime import Runtime
from relayflow.storage.db import read_scope, session_scope
from relayflow.storage.models import RunCount, RunTotal, WorkflowRun
from relayflow.storage.repositories import run as run_repo
from relayflow.storage.repositories import run_counts
from relayflow.storage.repositories.run import RunFilter
from tests.support.flows import install

STATUSES = tuple(RunStatus)
# Two days across the end of daylight saving time in Europe (2026-10-25 01:00 UTC).
START = datetime(2026, 10, 24, 0, 0, tzinfo=UTC)
SPAN = timedelta(days=2, hours=5)
TRIGGERS = {"run_counts_insert", "run_counts_update", "run_counts_delete"}


def _flow(key: str) -> dict:
    return {"key": key, "trigger": {"type": "manual"}, "start": "done",
            "nodes": {"done": {"type": "END"}}}


@pytest.fixture
def world(runtime: Runtime, workspace) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """Two workflows with 400 runs between them, created at random instants over START +
    SPAN, then moved between statuses and some deleted, in several transactions, with a
    fold between some of them: the rollup is part folded, part pending changes."""
    rng = random.Random(7)
    workflow_ids = []
    for key in ("alpha", "beta"):
        install(runtime, workspace.id, _flow(key))
        with session_scope(runtime.sessions) as session:
            workflow = workflow_service.get(session, workspace_id=workspace.id, key=key)
            workflow_ids.append((workflow.id, workflow.current_version_id))
    ids = []
    for part in range(4):
        with session_scope(runtime.sessions) as session:
            rows = []
            for _ in range(100):
                workflow_id, version_id = rng.choice(workflow_ids)
                at = START + timedelta(seconds=rng.uniform(0, SPAN.total_seconds()))
                run, _, _ = run_service.new_run_rows(
                    workspace_id=workspace.id, workflow_id=workflow_id, version_id=version_id,
                    contact_id=None, trigger_type="manual", event={}, now=at)
                rows.append(run)
                ids.append(run["id"])
            run_repo.add_new(session, runs=rows, steps=[])
            for run_id in rng.sample(ids, 60):
                session.execute(update(WorkflowRun).where(WorkflowRun.id == run_id)
                                .values(status=rng.choice(STATUSES)))
            if part == 3:
                for run_id in rng.sample(ids, 25):
                    session.execute(delete(WorkflowRun).where(WorkflowRun.id == run_id))
                    ids.remove(run_id)
        if part in (1, 2):
            with session_scope(runtime.sessions) as session:
                assert run_counts.fold(session, limit=150 if part == 1 else 10_000)
    with read_scope(runtime.sessions) as session:
        assert run_counts.pending(session) > 0  # the last part is not folded
    return workspace.id, [w for w, _ in workflow_ids]


def _random_filters(workspace_id: uuid.UUID, workflows: list[uuid.UUID]) -> list[RunFilter]:
    rng = random.Random(11)
    filters = [RunFilter(workspace_id=workspace_id),
               RunFilter(workspace_id=workspace_id, workflow_id=workflows[0]),
               RunFilter(workspace_id=workspace_id, statuses=("FAILED", "CANCELED")),
               # whole hours, and a window inside one hour
               RunFilter(workspace_id=workspace_id, created_from=START + timedelta(hours=3),
                         created_to=START + timedelta(hours=20)),
               RunFilter(workspace_id=workspace_id, created_from=START + timedelta(minutes=5),
                         created_to=START + timedelta(minutes=50))]
    for _ in range(30):
        a, b = sorted(START + timedelta(seconds=rng.uniform(-3600, SPAN.total_seconds() + 3600))
                      for _ in range(2))
        filters.append(RunFilter(
            workspace_id=workspace_id,
            workflow_id=rng.choice([None, *workflows]),
            statuses=tuple(rng.sample(STATUSES, rng.randint(0, 2))),
            created_from=rng.choice([None, a]), created_to=rng.choice([None, b])))
    return filters


def _counted(session, f: RunFilter) -> dict[str, int]:
    """Runs by status counted from the runs themselves."""
    return run_repo._count_by_status(session, f)


def test_triggers_exist_at_head(runtime: Runtime) -> None:
    with read_scope(runtime.sessions) as session:
        if session.get_bind().dialect.name == "sqlite":
            names = set(session.scalars(text(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' "
                "AND tbl_name = 'workflow_runs'")))
        else:
            names = set(session.scalars(text(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'workflow_runs'::regclass "
                "AND NOT tgisinternal")))
    assert names >= TRIGGERS


def test_counts_from_the_rollup_equal_counting_the_runs(runtime, world) -> None:
    workspace_id, workflows = world
    with read_scope(runtime.sessions) as session:
        for f in _random_filters(workspace_id, workflows):
            assert run_repo.count_by_status(session, f) == _counted(session, f), f


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"])
@pytest.mark.parametrize("size", [3600, 6 * 3600, 86400, 7 * 86400])
def test_chart_buckets_from_the_rollup_equal_counting_the_runs(runtime, world, zone,
                                                                size) -> None:
    workspace_id, workflows = world
    origin = 4 * 86400 if size == 7 * 86400 else 0
    offsets = zone_offsets(ZoneInfo(zone), START - timedelta(hours=1), START + SPAN)
    with read_scope(runtime.sessions) as session:
        for f in _random_filters(workspace_id, workflows)[:12]:
            rolled = run_repo.count_by_bucket(session, f, size_seconds=size, origin=origin,
                                              offsets=offsets)
            counted = run_repo._count_by_bucket(session, f, size_seconds=size,
                                                origin=origin % size, offsets=offsets)
            assert sorted(rolled) == sorted(counted), (zone, size, f)


def test_a_fold_moves_every_change_once(runtime, world) -> None:
    workspace_id, workflows = world
    with session_scope(runtime.sessions) as session:
        while run_counts.fold(session, limit=37):
            pass
    with read_scope(runtime.sessions) as session:
        assert run_counts.pending(session) == 0
        runs = {(w, s): n for w, s, n in session.execute(
            select(WorkflowRun.workflow_id, WorkflowRun.status, func.count())
            .where(WorkflowRun.workspace_id == workspace_id)
            .group_by(WorkflowRun.workflow_id, WorkflowRun.status))}
        by_workflow = {(w, s): n for w, s, n in session.execute(
            select(RunCount.workflow_id, RunCount.status, func.sum(RunCount.runs))
            .where(RunCount.workspace_id == workspace_id)
            .group_by(RunCount.workflow_id, RunCount.status)) if n}
        totals = {s: n for s, n in session.execute(
            select(RunTotal.status, func.sum(RunTotal.runs))
            .where(RunTotal.workspace_id == workspace_id).group_by(RunTotal.status)) if n}
        assert by_workflow == runs
        by_status: dict[str, int] = {}
        for (_, status), n in runs.items():
            by_status[status] = by_status.get(status, 0) + n
        assert totals == by_status
        for f in _random_filters(workspace_id, workflows):
            assert run_repo.count_by_status(session, f) == _counted(session, f), f


def test_a_run_moved_to_another_hour_is_counted_in_its_new_one(runtime, world) -> None:
    """No product path moves a run, but a trigger that ignored it would count it twice."""
    workspace_id, _ = world
    with session_scope(runtime.sessions) as session:
        run_id = session.scalar(select(WorkflowRun.id).where(
            WorkflowRun.workspace_id == workspace_id).limit(1))
        session.execute(update(WorkflowRun).where(WorkflowRun.id == run_id).values(
            created_at=START - timedelta(days=3), status="FAILED"))
    whole = RunFilter(workspace_id=workspace_id)
    moved = RunFilter(workspace_id=workspace_id, created_to=START - timedelta(days=2))
    with read_scope(runtime.sessions) as session:
        assert run_repo.count_by_status(session, moved) == {"FAILED": 1}
        assert run_repo.count_by_status(session, whole) == _counted(session, whole)


def test_inserting_through_plain_sql_is_counted(runtime, world) -> None:
    """The triggers count whatever writes runs, not only the product's own code."""
    workspace_id, workflows = world
    with session_scope(runtime.sessions) as session:
        template = session.execute(select(WorkflowRun.__table__).where(
            WorkflowRun.workflow_id == workflows[1]).limit(1)).mappings().one()
        session.execute(insert(WorkflowRun.__table__), [
            {**template, "id": uuid.uuid4(), "status": "FAILED"} for _ in range(5)])
    f = RunFilter(workspace_id=workspace_id, workflow_id=workflows[1])
    with read_scope(runtime.sessions) as session:
        assert run_repo.count_by_status(session, f) == _counted(session, f)
