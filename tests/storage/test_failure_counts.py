"""The failures' rollup (run_failure_counts, delivery_failure_counts): the rollups' triggers
keep it exact whatever writes a fingerprint (with the status or apart from it) or deletes a
failure, and /failures' counts, sparklines and first and last seen read through it equal
counting the failures themselves, for any window, part folded or all."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, insert, select, update

from relayflow.engine.status import DeliveryStatus, RunStatus
from relayflow.services import failures
from relayflow.services import run as run_service
from relayflow.services import workflow as workflow_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import read_scope, session_scope
from relayflow.storage.models import (
    DeliveryAttempt,
    DeliveryFailureCount,
    RunFailureCount,
    WorkflowRun,
)
from relayflow.storage.repositories import failure as failure_repo
from relayflow.storage.repositories import rollup
from relayflow.storage.repositories import run as run_repo
from tests.support.flows import install

START = datetime(2026, 10, 24, 0, 0, tzinfo=UTC)
SPAN = timedelta(days=2, hours=5)
KINDS = {"run": WorkflowRun, "delivery": DeliveryAttempt}
ROLLUPS = {"run": RunFailureCount, "delivery": DeliveryFailureCount}


def _flow(key: str) -> dict:
    return {"key": key, "trigger": {"type": "manual"}, "start": "done",
            "nodes": {"done": {"type": "END"}}}


def _cause(workspace_id: uuid.UUID, kind: str, n: int, workflow_id: uuid.UUID) -> dict:
    return {"workspace_id": workspace_id, "fingerprint": f"{kind[0]}{n:015x}", "kind": kind,
            "workflow_id": workflow_id, "node_id": "done", "node_type": "END",
            "error_class": "Boom", "pattern": f"boom {n}", "sample_error": f"boom {n}",
            "created_at": START}


@pytest.fixture
def failed(runtime: Runtime, workspace) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """Runs and attempts of two workflows over START + SPAN, failing of six causes (and of
    one nobody described: its workflow was deleted): most take their fingerprint in the
    UPDATE that fails them, some in a later one of their own; some failures are deleted,
    some attempts move on from BOUNCED keeping theirs. Part folded, part pending."""
    rng = random.Random(3)
    workflows = []
    for key in ("alpha", "beta"):
        install(runtime, workspace.id, _flow(key))
        with session_scope(runtime.sessions) as session:
            workflow = workflow_service.get(session, workspace_id=workspace.id, key=key)
            workflows.append((workflow.id, workflow.current_version_id))
    causes = {kind: [_cause(workspace.id, kind, n, workflows[n % 2][0]) for n in range(3)]
              for kind in KINDS}
    with session_scope(runtime.sessions) as session:
        failure_repo.describe(session, [c for found in causes.values() for c in found])
    names = {kind: [c["fingerprint"] for c in found] + [f"{kind[0]}{'f' * 15}"]
             for kind, found in causes.items()}
    runs: list[uuid.UUID] = []
    attempts: list[uuid.UUID] = []
    for part in range(4):
        with session_scope(runtime.sessions) as session:
            new_runs, new_attempts = [], []
            for _ in range(80):
                workflow_id, version_id = rng.choice(workflows)
                at = START + timedelta(seconds=rng.uniform(0, SPAN.total_seconds()))
                run, _, _ = run_service.new_run_rows(
                    workspace_id=workspace.id, workflow_id=workflow_id, version_id=version_id,
                    contact_id=None, trigger_type="manual", event={}, now=at)
                new_runs.append(run)
                new_attempts.append({
                    "id": uuid.uuid4(), "workspace_id": workspace.id,
                    "workflow_id": rng.choice([None, workflow_id]), "channel": "email",
                    "provider": "outbox", "recipient": "a@example.com", "created_at": at,
                    "status": DeliveryStatus.SENT})
            run_repo.add_new(session, runs=new_runs, steps=[])
            session.execute(insert(DeliveryAttempt), new_attempts)
            runs += [r["id"] for r in new_runs]
            attempts += [a["id"] for a in new_attempts]
            for kind, ids, status in (("run", runs, RunStatus.FAILED),
                                      ("delivery", attempts, DeliveryStatus.BOUNCED)):
                model = KINDS[kind]
                for row_id in rng.sample(ids, 30):
                    values = {"status": status, "fingerprint": rng.choice(names[kind])}
                    if rng.random() < 0.3:  # the fingerprint in an UPDATE of its own
                        session.execute(update(model).where(model.id == row_id)
                                        .values(status=status))
                        values = {"fingerprint": values["fingerprint"]}
                    session.execute(update(model).where(model.id == row_id).values(**values))
                if part >= 2:
                    for row_id in rng.sample(ids, 10):
                        session.execute(delete(model).where(model.id == row_id))
                        ids.remove(row_id)
            # A status change alone (no product path moves a bounce on) leaves the cause
            # counted once.
            for row_id in rng.sample(attempts, 10):
                session.execute(update(DeliveryAttempt).where(
                    DeliveryAttempt.id == row_id,
                    DeliveryAttempt.status == DeliveryStatus.BOUNCED)
                    .values(status=DeliveryStatus.FAILED))
        if part in (1, 2):
            with session_scope(runtime.sessions) as session:
                assert rollup.fold(session, limit=90 if part == 1 else 10_000)
    with read_scope(runtime.sessions) as session:
        assert rollup.pending(session, rollup.RUNS) > 0
    return workspace.id, [w for w, _ in workflows]


def _windows() -> list[tuple[datetime, datetime]]:
    rng = random.Random(17)
    windows = [(START - timedelta(hours=1), START + SPAN + timedelta(hours=1)),
               (START + timedelta(hours=3), START + timedelta(hours=20)),  # whole hours
               (START + timedelta(minutes=5), START + timedelta(minutes=50)),  # in one hour
               (START + timedelta(minutes=50), START + timedelta(hours=1, minutes=10))]
    for _ in range(25):
        a, b = sorted(START + timedelta(seconds=rng.uniform(-3600, SPAN.total_seconds() + 3600))
                      for _ in range(2))
        windows.append((a, b))
    return windows


def _expected(session, workspace_id: uuid.UUID, kinds: tuple[str, ...],
              workflow_id: uuid.UUID | None, start: datetime, end: datetime,
              bars: failures.Bars) -> dict[str, tuple]:
    """(count, sparkline, first seen, last seen) by cause, from the failures themselves."""
    found: dict[str, list] = {}
    for kind in kinds:
        described = failure_repo.FailureGroup
        model = KINDS[kind]
        query = (select(model.fingerprint, model.created_at)
                 .join(described, (described.workspace_id == model.workspace_id)
                       & (described.fingerprint == model.fingerprint))
                 .where(model.workspace_id == workspace_id, model.created_at >= start,
                        model.created_at < end))
        if workflow_id is not None:
            query = query.where(described.workflow_id == workflow_id)
        for name, at in session.execute(query):
            group = found.setdefault(name, [0, [0] * bars.count, at, at])
            group[0] += 1
            group[1][min(int((at - bars.origin) / bars.width), bars.count - 1)] += 1
            group[2], group[3] = min(group[2], at), max(group[3], at)
    return {name: tuple(group) for name, group in found.items()}


def _read(session, workspace_id: uuid.UUID, kinds: tuple[str, ...],
          workflow_id: uuid.UUID | None, start: datetime, end: datetime,
          bars: failures.Bars) -> dict[str, tuple]:
    groups = failure_repo.groups(session, workspace_id=workspace_id, kinds=kinds,
                                 workflow_id=workflow_id, start=start, end=end,
                                 origin=bars.origin, bucket=bars.width, buckets=bars.count)
    return {g.fingerprint: (g.count, g.buckets, g.first_seen, g.last_seen) for g in groups}


def _check_every_window(runtime: Runtime, workspace_id: uuid.UUID,
                        workflows: list[uuid.UUID]) -> int:
    checked = 0
    with read_scope(runtime.sessions) as session:
        for n, (start, end) in enumerate(_windows()):
            bars = failures.bars(start, end)
            kinds = (("run",), ("delivery",), ("run", "delivery"))[n % 3]
            workflow_id = (None, *workflows)[n % 3 if n % 2 else 0]
            expected = _expected(session, workspace_id, kinds, workflow_id, start, end, bars)
            read = _read(session, workspace_id, kinds, workflow_id, start, end, bars)
            assert read == expected, (start, end, kinds, workflow_id)
            checked += len(expected)
    return checked


def test_groups_read_through_the_rollup_equal_counting_the_failures(runtime, failed) -> None:
    workspace_id, workflows = failed
    assert _check_every_window(runtime, workspace_id, workflows) > 50
    with session_scope(runtime.sessions) as session:
        while rollup.fold(session, limit=33):
            pass
    assert _check_every_window(runtime, workspace_id, workflows) > 50


def test_a_fold_moves_every_failure_once(runtime, failed) -> None:
    workspace_id, _ = failed
    with session_scope(runtime.sessions) as session:
        while rollup.fold(session, limit=29):
            pass
    with read_scope(runtime.sessions) as session:
        for kind, model in KINDS.items():
            rows = {}
            for name, at in session.execute(select(model.fingerprint, model.created_at).where(
                    model.workspace_id == workspace_id, model.fingerprint.is_not(None))):
                hour = int(at.timestamp()) // 3600 * 3600
                rows[hour, name] = rows.get((hour, name), 0) + 1
            table = ROLLUPS[kind]
            rolled = {(hour, name): n for hour, name, n in session.execute(
                select(table.hour, table.fingerprint, table.failures)
                .where(table.workspace_id == workspace_id)) if n}
            assert rolled == rows, kind
            assert sum(rows.values()) > 30


def test_a_failure_moved_to_another_hour_is_counted_in_its_new_one(runtime, failed) -> None:
    """No product path moves a failure, but a trigger that ignored it would count it twice."""
    workspace_id, _ = failed
    with session_scope(runtime.sessions) as session:
        # A described cause (the one nobody described has no group to read), picked the
        # same way on both databases.
        run_id, name = session.execute(select(WorkflowRun.id, WorkflowRun.fingerprint).where(
            WorkflowRun.workspace_id == workspace_id, WorkflowRun.fingerprint.like("r%"),
            WorkflowRun.fingerprint != "r" + "f" * 15).order_by(WorkflowRun.id).limit(1)).one()
        session.execute(update(WorkflowRun).where(WorkflowRun.id == run_id)
                        .values(created_at=START - timedelta(days=3)))
    start, end = START - timedelta(days=4), START + SPAN + timedelta(hours=2)
    bars = failures.bars(start, end)
    with read_scope(runtime.sessions) as session:
        read = _read(session, workspace_id, ("run",), None, start, end, bars)
        assert read == _expected(session, workspace_id, ("run",), None, start, end, bars)
        assert read[name][2] == START - timedelta(days=3)


@pytest.mark.parametrize(("span", "hours", "count"), [
    (timedelta(days=30), 24, 31), (timedelta(days=7), 6, 29), (timedelta(hours=24), 1, 25),
    (timedelta(minutes=10), 1, 1)])
def test_sparkline_bars_are_whole_hours_on_their_multiples(span, hours, count) -> None:
    end = datetime(2026, 12, 7, 20, 41, 5, tzinfo=UTC)
    bars = failures.bars(end - span, end)
    assert bars.width == timedelta(hours=hours)
    assert bars.count == count
    assert bars.origin <= end - span < bars.origin + bars.width
    assert int(bars.origin.timestamp()) % (hours * 3600) == 0
    assert bars.origin + bars.count * bars.width >= end


def test_sparkline_of_a_range_on_whole_days_has_thirty_bars() -> None:
    end = datetime(2026, 12, 7, tzinfo=UTC)
    bars = failures.bars(end - timedelta(days=30), end)
    assert (bars.origin, bars.width, bars.count) == (end - timedelta(days=30),
                                                     timedelta(days=1), 30)
