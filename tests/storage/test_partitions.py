"""PostgreSQL's monthly partitions: rows land in their id's month, a lookup by id reads one
partition, prune drops a month whole when nothing in it must stay (and only then), the
rollups lose exactly what went, and a drop that cannot get its locks leaves the rows to
the batches. The migration moves an existing history into its months."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, text, update

from relayflow.engine.status import TERMINAL, DeliveryStatus, RunStatus
from relayflow.services import retention
from relayflow.services import run as run_service
from relayflow.services import workflow as workflow_service
from relayflow.services.runtime import Runtime
from relayflow.storage import partitions
from relayflow.storage.db import make_engine, read_scope, session_scope
from relayflow.storage.ids import id_at, new_id
from relayflow.storage.migrate import drift, upgrade
from relayflow.storage.models import (
    DeliveryAttempt,
    RunKey,
    RunStep,
    Workflow,
    WorkflowRun,
    WorkflowVersion,
    Workspace,
)
from relayflow.storage.repositories import retention as retention_repo
from relayflow.storage.repositories import rollup
from relayflow.storage.repositories import run as run_repo
from relayflow.worker.loop import Worker
from tests.conftest import WorkspaceHandle
from tests.support.databases import empty_database
from tests.support.flows import install

pytestmark = pytest.mark.postgres_only

FLOW = {"key": "kept", "trigger": {"type": "manual"}, "start": "done",
        "nodes": {"done": {"type": "END"}}}
NOW = datetime.now(UTC)
# Five months back and four: both wholly past a 60-day retention.
OLD = partitions.month_of(NOW - timedelta(days=150))
LATER = partitions.next_month(OLD)


def _at(month: date, day: int) -> datetime:
    return datetime(month.year, month.month, day, 12, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_past_months(runtime: Runtime) -> None:
    """The tests share one database: the months earlier tests made (empty now, and so
    droppable) are dropped first; each test makes those it fills."""
    with session_scope(runtime.sessions) as session:
        conn = session.connection()
        for table in ("run_steps", "run_search", "workflow_runs", "delivery_attempts"):
            for month in partitions.existing(conn, table):
                if month < partitions.month_of(NOW):
                    _drop(conn, table, month)


def _drop(conn, table: str, month: date) -> None:
    conn.exec_driver_sql(f"ALTER TABLE {table} DETACH PARTITION {partitions.name(table, month)}")
    conn.exec_driver_sql(f"DROP TABLE {partitions.name(table, month)}")


def _history(runtime: Runtime, workspace: WorkspaceHandle,
             specs: list[tuple[datetime, RunStatus]]) -> list[uuid.UUID]:
    """A run per (time, status) with its first step, an idempotency key and a delivered
    attempt, every id made at that time (as the product's are: storage/ids.py), finished
    an hour after it began unless still in flight."""
    install(runtime, workspace.id, FLOW)
    with session_scope(runtime.sessions) as session:
        for month in {partitions.month_of(at) for at, _ in specs}:
            partitions.ensure(session.connection(), month, month)
        workflow = workflow_service.get(session, workspace_id=workspace.id, key="kept")
        runs, steps, attempts = [], [], []
        for at, _ in specs:
            run, step, _job = run_service.new_run_rows(
                workspace_id=workspace.id, workflow_id=workflow.id,
                version_id=workflow.current_version_id, contact_id=None,
                trigger_type="webhook", event={}, now=at, idempotency_key=f"order-{new_id()}")
            run["id"] = step["run_id"] = id_at(at)
            step["id"] = id_at(at)
            runs.append(run)
            steps.append(step)
            attempts.append({
                "id": id_at(at), "workspace_id": workspace.id, "run_id": run["id"],
                "workflow_id": workflow.id, "channel": "email", "provider": "outbox",
                "recipient": "a@example.com", "subject": "Hi", "body": "Hi",
                "status": DeliveryStatus.DELIVERED, "attempt_number": 1, "created_at": at})
        run_repo.add_new(session, runs=runs, steps=steps)
        session.execute(insert(DeliveryAttempt), attempts)
        for run, (at, status) in zip(runs, specs, strict=True):
            finished = None if status not in TERMINAL else at + timedelta(hours=1)
            cause = f"{at.day:016x}" if status == RunStatus.FAILED else None
            session.execute(update(WorkflowRun).where(WorkflowRun.id == run["id"])
                            .values(status=status, finished_at=finished, fingerprint=cause))
    return [run["id"] for run in runs]


def _home(runtime: Runtime, table: str, row_id: uuid.UUID) -> str:
    with read_scope(runtime.sessions) as session:
        return str(session.scalar(text(f"SELECT tableoid::regclass FROM {table} "  # nosec B608
                                       "WHERE id = :id"), {"id": row_id}))


def _count(runtime: Runtime, model: type, *where: object) -> int:
    with read_scope(runtime.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _rollups_match_rows(runtime: Runtime, workspace: WorkspaceHandle) -> None:
    """Every status's count from the rollups equals the rows' own count, and so does each
    cause's failures by hour."""
    with read_scope(runtime.sessions) as session:
        for kind, model in ((rollup.RUNS, WorkflowRun), (rollup.ATTEMPTS, DeliveryAttempt)):
            counted = {status: n for _, status, n in rollup.count(session, kind, workspace.id)}
            rows = dict(session.execute(
                select(model.status, func.count()).where(model.workspace_id == workspace.id)
                .group_by(model.status)).all())
            assert counted == rows, kind.detail
            failed: dict[tuple[int, str], int] = {}
            for name, at in session.execute(select(model.fingerprint, model.created_at).where(
                    model.workspace_id == workspace.id, model.fingerprint.is_not(None))):
                key = (int(at.timestamp()) // 3600 * 3600, name)
                failed[key] = failed.get(key, 0) + 1
            by_cause = rollup.failures(session, kind, workspace.id, first=0, end=2 ** 40)
            assert {(bar * 3600, name): n for bar, name, n in by_cause} == failed, kind.failures


def test_rows_live_in_their_ids_month_and_a_lookup_reads_one_partition(
        runtime: Runtime, workspace: WorkspaceHandle) -> None:
    [old] = _history(runtime, workspace, [(_at(OLD, 3), RunStatus.COMPLETED)])
    with session_scope(runtime.sessions) as session:
        made = run_service.trigger_manual(session, workspace_id=workspace.id, workflow_key="kept",
                                          contact=None, event={}, now=NOW).run.id
    assert _home(runtime, "workflow_runs", old) == partitions.name("workflow_runs", OLD)
    assert _home(runtime, "workflow_runs", made) == partitions.name(
        "workflow_runs", partitions.month_of(NOW))
    with session_scope(runtime.sessions) as session:  # EXPLAIN is no plain read
        [home] = session.execute(text("SELECT tableoid::regclass FROM run_steps "
                                      "WHERE run_id = :id"), {"id": made}).scalars()
        assert str(home) == partitions.name("run_steps", partitions.month_of(NOW))
        plan = "\n".join(session.scalars(text(
            "EXPLAIN SELECT * FROM workflow_runs WHERE id = :id"), {"id": old}))
    assert partitions.name("workflow_runs", OLD) in plan
    assert "Append" not in plan
    assert partitions.default_name("workflow_runs") not in plan


def test_an_id_of_no_month_goes_to_the_default_partition(
        runtime: Runtime, workspace: WorkspaceHandle) -> None:
    install(runtime, workspace.id, FLOW)
    with session_scope(runtime.sessions) as session:
        workflow = workflow_service.get(session, workspace_id=workspace.id, key="kept")
        run, step, _job = run_service.new_run_rows(
            workspace_id=workspace.id, workflow_id=workflow.id,
            version_id=workflow.current_version_id, contact_id=None, trigger_type="manual",
            event={}, now=NOW)
        run["id"] = step["run_id"] = uuid.uuid4()  # version 4: its first bits are no time
        run_repo.add_new(session, runs=[run], steps=[step])
    assert _home(runtime, "workflow_runs", run["id"]) == partitions.default_name(
        "workflow_runs")


def test_prune_drops_a_month_whole_when_nothing_in_it_must_stay(
        runtime: Runtime, workspace: WorkspaceHandle) -> None:
    gone = _history(runtime, workspace, [
        (_at(OLD, 1 + n % 27), status) for n, status in enumerate(
            [RunStatus.COMPLETED] * 20 + [RunStatus.FAILED] * 5 + [RunStatus.CANCELED] * 3)])
    held = _history(runtime, workspace, [(_at(LATER, 2), RunStatus.RUNNING)]
                    + [(_at(LATER, 5 + n), RunStatus.COMPLETED) for n in range(6)])
    recent = _history(runtime, workspace, [(NOW - timedelta(days=1), RunStatus.COMPLETED)])

    result = retention.prune(runtime, older_than="60d")

    # The later month holds a run in flight: its runs' partition stays, and its finished
    # runs go in batches; its attempts were all delivered, and go whole.
    assert _names(result) == [partitions.name("workflow_runs", OLD),
                             partitions.name("delivery_attempts", OLD),
                             partitions.name("delivery_attempts", LATER)]
    with read_scope(runtime.sessions) as session:
        conn = session.connection()
        for table in ("workflow_runs", "run_steps", "run_search"):
            months = partitions.existing(conn, table)
            assert OLD not in months, table
            assert LATER in months, table
        assert not {OLD, LATER} & set(partitions.existing(conn, "delivery_attempts"))
        # The words of the runs that went, whole month or batch, went with them.
        words = set(conn.scalars(text("SELECT run_id FROM run_search")))
        assert words == set(conn.scalars(text("SELECT id FROM workflow_runs")))
        assert {held[0], recent[0]} <= words
    assert set(_ids(runtime, WorkflowRun)) == {held[0], recent[0]}
    assert not set(gone) & set(_ids(runtime, WorkflowRun))
    assert (result.runs, result.attempts) == (28 + 6, 28 + 7)
    assert result.by_workspace == {"acme": (34, 35)}
    assert _count(runtime, RunKey) == 2
    assert _count(runtime, RunStep) == 2
    _rollups_match_rows(runtime, workspace)


def _names(result: retention.Pruned) -> list[str]:
    return [dropped.partition for dropped in result.months]


def _ids(runtime: Runtime, model: type) -> list[uuid.UUID]:
    with read_scope(runtime.sessions) as session:
        return list(session.scalars(select(model.id)))


def test_a_failure_kept_longer_keeps_its_month_and_the_rest_of_it_goes_in_batches(
        runtime: Runtime, workspace: WorkspaceHandle) -> None:
    with session_scope(runtime.sessions) as session:
        retention.put(session, workspace_id=workspace.id, days=None, failed_days=365,
                      now=NOW, actor="test")
    runs = _history(runtime, workspace, [(_at(OLD, 2), RunStatus.FAILED)]
                    + [(_at(OLD, 3 + n), RunStatus.COMPLETED) for n in range(5)])

    dry = retention.prune(runtime, older_than="60d", dry_run=True)
    result = retention.prune(runtime, older_than="60d")

    # The month's attempts were all delivered: they go whole; its runs cannot.
    assert _names(dry) == _names(result) == [partitions.name("delivery_attempts", OLD)]
    assert (dry.runs, dry.attempts) == (result.runs, result.attempts) == (5, 6)
    assert set(_ids(runtime, WorkflowRun)) == {runs[0]}
    with read_scope(runtime.sessions) as session:
        assert OLD in partitions.existing(session.connection(), "workflow_runs")
    _rollups_match_rows(runtime, workspace)


def test_a_dry_run_names_the_months_and_drops_nothing(
        runtime: Runtime, workspace: WorkspaceHandle) -> None:
    runs = _history(runtime, workspace, [(_at(OLD, 4), RunStatus.COMPLETED)] * 3)
    result = retention.prune(runtime, older_than="60d", dry_run=True)
    assert _names(result) == [partitions.name("workflow_runs", OLD),
                             partitions.name("delivery_attempts", OLD)]
    assert (result.runs, result.attempts) == (3, 3)
    assert set(_ids(runtime, WorkflowRun)) == set(runs)


def test_a_drop_that_cannot_get_its_locks_leaves_the_rows_to_the_batches(
        runtime: Runtime, workspace: WorkspaceHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retention, "DROP_TRIES", 2)
    monkeypatch.setattr(retention, "DROP_PAUSE", 0.0)
    monkeypatch.setattr(retention_repo, "LOCK_TIMEOUT", "200ms")
    _history(runtime, workspace, [(_at(OLD, 4), RunStatus.COMPLETED)] * 4)
    engine = make_engine(runtime.sessions.kw["bind"].url.render_as_string(hide_password=False))
    try:
        with engine.connect() as reader:  # a long read of the runs, open throughout
            reader.execute(text("SELECT count(*) FROM workflow_runs"))
            result = retention.prune(runtime, older_than="60d")
            reader.rollback()
    finally:
        engine.dispose()
    # The attempts' month was not being read: it went whole.
    assert _names(result) == [partitions.name("delivery_attempts", OLD)]
    assert (result.runs, result.attempts) == (4, 4)
    assert _ids(runtime, WorkflowRun) == []
    with read_scope(runtime.sessions) as session:
        assert OLD in partitions.existing(session.connection(), "workflow_runs")
    _rollups_match_rows(runtime, workspace)


def test_workers_make_the_coming_months(runtime: Runtime, settings) -> None:
    coming = partitions.next_month(partitions.next_month(partitions.month_of(NOW)))
    with session_scope(runtime.sessions) as session:
        for table in ("run_steps", "run_search", "workflow_runs", "delivery_attempts"):
            _drop(session.connection(), table, coming)
    made = Worker(runtime, settings).partitions_once()
    assert sorted(made) == sorted(partitions.name(t, coming) for t in partitions.TABLES)
    assert Worker(runtime, settings).partitions_once() == []


@pytest.fixture
def empty_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    with empty_database(db_url, tmp_path) as url:
        yield url


def test_the_migration_moves_a_history_into_its_months(empty_url: str) -> None:
    upgrade(empty_url, "0013")
    engine = make_engine(empty_url)
    ws, wf, version = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    times = [_at(OLD, 9), _at(LATER, 9), NOW]
    ids = [id_at(at) for at in times]
    with engine.begin() as conn:
        conn.execute(insert(Workspace.__table__).values(
            id=ws, slug="old", name="Old", created_at=NOW))
        conn.execute(insert(Workflow.__table__).values(
            id=wf, workspace_id=ws, key="k", name="K", created_at=NOW, updated_at=NOW))
        conn.execute(insert(WorkflowVersion.__table__).values(
            id=version, workspace_id=ws, workflow_id=wf, number=1, definition={},
            definition_hash="h", created_at=NOW))
        for n, (run_id, at) in enumerate(zip(ids, times, strict=True)):
            conn.execute(insert(WorkflowRun.__table__).values(
                id=run_id, workspace_id=ws, workflow_id=wf, version_id=version,
                trigger_type="webhook", idempotency_key=f"k{n}", status="COMPLETED",
                created_at=at))
            conn.execute(insert(RunStep.__table__).values(
                id=id_at(at), workspace_id=ws, run_id=run_id, seq=0, node_id="trigger",
                node_type="TRIGGER", status="COMPLETED", started_at=at))
    before = _rollup_rows(engine)
    upgrade(empty_url)
    assert drift(empty_url) == []
    with engine.connect() as conn:
        homes = [str(conn.scalar(text("SELECT tableoid::regclass FROM workflow_runs "
                                      "WHERE id = :id"), {"id": i})) for i in ids]
        keys = conn.execute(text("SELECT idempotency_key, run_id FROM run_keys "
                                 "ORDER BY idempotency_key")).all()
        steps = conn.scalar(text("SELECT count(*) FROM run_steps"))
    after = _rollup_rows(engine)
    engine.dispose()
    assert homes == [partitions.name("workflow_runs", partitions.month_of(at)) for at in times]
    assert keys == [(f"k{n}", i) for n, i in enumerate(ids)]
    assert steps == 3
    assert before == after
    assert sum(n for *_, n in after) == 3


def _rollup_rows(engine) -> list[tuple]:
    with engine.connect() as conn:
        return sorted(conn.execute(text(
            "SELECT hour, status, sum(n) FROM (SELECT hour, status, runs AS n FROM run_counts "
            "UNION ALL SELECT hour, new_status, 1 FROM run_count_changes "
            "WHERE new_status IS NOT NULL UNION ALL SELECT hour, old_status, -1 FROM "
            "run_count_changes WHERE old_status IS NOT NULL) AS c GROUP BY hour, status")).all())
