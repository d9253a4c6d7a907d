"""The hourly rollups of runs and delivery attempts: the triggers keep them exact whatever
writes the rows, a fold moves the changes without losing or doubling one, and every count
and chart read from them equals counting the rows themselves, under every filter, window
edge and time zone."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, func, insert, select, text, update

from relayflow.engine.status import DeliveryStatus, RunStatus
from relayflow.services import run as run_service
from relayflow.services import workflow as workflow_service
from relayflow.services.run_history import zone_offsets
from relayflow.services.runtime import Runtime
from relayflow.storage.db import read_scope, session_scope
from relayflow.storage.models import DeliveryAttempt, RunCount, RunTotal, WorkflowRun
from relayflow.storage.repositories import delivery as delivery_repo
from relayflow.storage.repositories import rollup
from relayflow.storage.repositories import run as run_repo
from relayflow.storage.repositories.delivery import DeliveryFilter
from relayflow.storage.repositories.run import RunFilter
from tests.support.flows import install

STATUSES = tuple(RunStatus)
# Two days across the end of daylight saving time in Europe (2026-10-25 01:00 UTC).
START = datetime(2026, 10, 24, 0, 0, tzinfo=UTC)
SPAN = timedelta(days=2, hours=5)
TRIGGERS = {"workflow_runs": {"run_counts_insert", "run_counts_update", "run_counts_move",
                              "run_counts_delete"},
            "delivery_attempts": {"delivery_counts_insert", "delivery_counts_update",
                                  "delivery_counts_delete"}}


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
                assert rollup.fold(session, limit=150 if part == 1 else 10_000)
    with read_scope(runtime.sessions) as session:
        assert rollup.pending(session, rollup.RUNS) > 0  # the last part is not folded
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


@pytest.mark.parametrize("table", sorted(TRIGGERS))
def test_triggers_exist_at_head(runtime: Runtime, table: str) -> None:
    with read_scope(runtime.sessions) as session:
        if session.get_bind().dialect.name == "sqlite":
            names = set(session.scalars(text(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"),
                {"t": table}))
        else:
            names = set(session.scalars(text(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = CAST(:t AS regclass) "
                "AND NOT tgisinternal"), {"t": table}))
    # PostgreSQL moves a row with the update trigger; SQLite has a trigger of its own
    assert names >= TRIGGERS[table] - {"run_counts_move"}


def test_counts_from_the_rollup_equal_counting_the_runs(runtime, world) -> None:
    workspace_id, workflows = world
    with read_scope(runtime.sessions) as session:
        for f in _random_filters(workspace_id, workflows):
            assert run_repo.count_by_status(session, f) == _counted(session, f), f


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata",
                                  "Asia/Kathmandu"])
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
        while rollup.fold(session, limit=37):
            pass
    with read_scope(runtime.sessions) as session:
        assert rollup.pending(session, rollup.RUNS) == 0
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


CHANNELS = ("email", "sms")
DELIVERY_STATUSES = tuple(DeliveryStatus)


@pytest.fixture
def attempts(runtime: Runtime, world) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """300 attempts of the world's workflows and of none, on two channels, moved between
    statuses and some deleted, part folded."""
    workspace_id, workflows = world
    rng = random.Random(5)
    ids = []
    for part in range(3):
        with session_scope(runtime.sessions) as session:
            rows = []
            for _ in range(100):
                at = START + timedelta(seconds=rng.uniform(0, SPAN.total_seconds()))
                rows.append({"id": uuid.uuid4(), "workspace_id": workspace_id,
                             "workflow_id": rng.choice([None, *workflows]),
                             "channel": rng.choice(CHANNELS), "provider": "outbox",
                             "recipient": "a@example.com", "created_at": at,
                             "status": rng.choice(DELIVERY_STATUSES)})
                ids.append(rows[-1]["id"])
            session.execute(insert(DeliveryAttempt), rows)
            for attempt_id in rng.sample(ids, 50):
                session.execute(update(DeliveryAttempt).where(DeliveryAttempt.id == attempt_id)
                                .values(status=rng.choice(DELIVERY_STATUSES)))
            if part == 2:
                for attempt_id in rng.sample(ids, 20):
                    session.execute(delete(DeliveryAttempt)
                                    .where(DeliveryAttempt.id == attempt_id))
        if part == 1:
            with session_scope(runtime.sessions) as session:
                assert rollup.fold(session, limit=120)
    with read_scope(runtime.sessions) as session:
        assert rollup.pending(session, rollup.ATTEMPTS) > 0
    return workspace_id, workflows


def _delivery_filters(workspace_id: uuid.UUID,
                      workflows: list[uuid.UUID]) -> list[DeliveryFilter]:
    rng = random.Random(13)
    filters = [DeliveryFilter(workspace_id=workspace_id),
               DeliveryFilter(workspace_id=workspace_id, channel="sms"),
               DeliveryFilter(workspace_id=workspace_id, workflow_id=workflows[1])]
    for _ in range(30):
        a, b = sorted(START + timedelta(seconds=rng.uniform(-3600, SPAN.total_seconds() + 3600))
                      for _ in range(2))
        filters.append(DeliveryFilter(
            workspace_id=workspace_id, workflow_id=rng.choice([None, *workflows]),
            channel=rng.choice([None, *CHANNELS]),
            statuses=tuple(rng.sample(DELIVERY_STATUSES, rng.randint(0, 2))),
            created_from=rng.choice([None, a]), created_to=rng.choice([None, b])))
    return filters


def test_delivery_counts_from_the_rollup_equal_counting_the_attempts(runtime,
                                                                     attempts) -> None:
    workspace_id, workflows = attempts
    for fold in (False, True):
        if fold:
            with session_scope(runtime.sessions) as session:
                while rollup.fold(session, limit=41):
                    pass
        with read_scope(runtime.sessions) as session:
            if fold:
                assert rollup.pending(session, rollup.ATTEMPTS) == 0
            for f in _delivery_filters(workspace_id, workflows):
                assert (delivery_repo.count_by_status(session, f)
                        == delivery_repo._count_by_status(session, f)), f
