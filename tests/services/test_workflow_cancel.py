"""Deactivation cancels in the background: one batch in the request, the rest by the
workers' sweep, each run as an operator cancel would (tests/faults/test_deactivate.py
drives it through a real server)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from relayflow.services import run as run_service
from relayflow.services import walk
from relayflow.services import workflow as workflow_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import Job, RunStep, WorkflowRun
from relayflow.worker.loop import Worker
from tests.support.flows import install, run_of, start, steps_of
from tests.support.parked import drip, park
from tests.support.worker import drain


def _deactivate(runtime: Runtime, workspace_id, key: str = "drip", batch: int = 500,
                actor: str = "t"):
    with session_scope(runtime.sessions) as session:
        workflow, canceled = workflow_service.deactivate(
            session, workspace_id=workspace_id, key=key, actor=actor, now=runtime.clock(),
            batch_size=batch)
        return workflow.cancel_total, canceled


def _progress(runtime: Runtime, workspace_id, key: str = "drip"):
    with session_scope(runtime.sessions) as session:
        workflow = workflow_service.get(session, workspace_id=workspace_id, key=key)
        found = workflow_service.cancellation(session, workflow=workflow)
        return None if found is None else (found.canceled, found.to_cancel)


def _statuses(runtime: Runtime, ids) -> dict[str, int]:
    with session_scope(runtime.sessions) as session:
        rows = session.execute(select(WorkflowRun.status, func.count())
                               .where(WorkflowRun.id.in_(ids)).group_by(WorkflowRun.status))
        return {status: count for status, count in rows}


class TestDeactivate:
    def test_one_batch_now_the_rest_by_the_worker_sweep(self, runtime, workspace, settings):
        install(runtime, workspace.id, drip())
        ids = park(runtime, workspace.id, "drip", 1200, now=runtime.clock())

        assert _deactivate(runtime, workspace.id) == (1200, 500)
        assert _progress(runtime, workspace.id) == (500, 1200)

        worker = Worker(runtime, settings)
        assert worker.cancel_once() == 500
        assert _progress(runtime, workspace.id) == (1000, 1200)
        assert worker.cancel_once() == 200
        assert _progress(runtime, workspace.id) is None  # done
        assert worker.cancel_once() == 0

        assert _statuses(runtime, ids) == {"CANCELED": 1200}
        with session_scope(runtime.sessions) as session:
            assert session.scalar(select(func.count()).select_from(Job)) == 0
            waiting = session.scalar(select(func.count()).select_from(RunStep)
                                     .where(RunStep.status == "WAITING"))
            assert waiting == 0
        run = run_of(runtime, ids[-1])
        assert (run.wake_at, run.error) == (None, None)
        assert run.finished_at is not None
        assert [s.status for s in steps_of(runtime, ids[-1])] == ["COMPLETED", "CANCELED"]

    def test_runs_started_after_reactivation_are_not_canceled(
        self, runtime, workspace, settings
    ):
        install(runtime, workspace.id, drip())
        old = park(runtime, workspace.id, "drip", 700, now=runtime.clock())
        _deactivate(runtime, workspace.id, batch=100)
        with session_scope(runtime.sessions) as session:
            workflow_service.activate(session, workspace_id=workspace.id, key="drip",
                                      actor="t", now=runtime.clock())
        new = start(runtime, workspace.id, "drip", count=3)
        drain(runtime)  # the new runs park at their WAIT; the old ones are still swept

        worker = Worker(runtime, settings)
        while worker.cancel_once():
            pass

        assert _statuses(runtime, old) == {"CANCELED": 700}
        assert _statuses(runtime, new) == {"RUNNING": 3}
        assert _progress(runtime, workspace.id) is None

    def test_terminal_runs_never_change(self, runtime, workspace):
        install(runtime, workspace.id, {**drip(), "nodes": {
            "pause": {"type": "WAIT", "duration": "3d", "next": "done"},
            "done": {"type": "END"}}})
        install(runtime, workspace.id, {"key": "quick", "trigger": {"type": "manual"},
                                        "start": "done", "nodes": {"done": {"type": "END"}}})
        [done] = start(runtime, workspace.id, "quick")
        drain(runtime)
        before = run_of(runtime, done)
        park(runtime, workspace.id, "drip", 3, now=runtime.clock())

        assert _deactivate(runtime, workspace.id, key="quick") == (0, 0)
        assert _deactivate(runtime, workspace.id) == (3, 3)

        after = run_of(runtime, done)
        assert (after.status, after.finished_at) == ("COMPLETED", before.finished_at)

    def test_a_run_a_worker_holds_stops_at_its_next_step_boundary(self, runtime, workspace):
        install(runtime, workspace.id, {"key": "drip", "trigger": {"type": "manual"},
                                        "start": "tag", "nodes": {
            "tag": {"type": "UPDATE_CONTACT", "set": {"a": "1"}, "next": "pause"},
            "pause": {"type": "WAIT", "duration": "3d", "next": "done"},
            "done": {"type": "END"}}})
        [run_id] = start(runtime, workspace.id, "drip", email="h@example.com")
        walkers = walk.claim(runtime, worker="w", limit=10, lease_seconds=30)

        assert _deactivate(runtime, workspace.id) == (1, 1)  # flagged, as a cancel does
        assert run_of(runtime, run_id).status == "PENDING"  # the worker holds it

        for walker in walkers:
            walker.walk(walk.make_child_starter(runtime))
        walk.commit(runtime, walkers)
        assert run_of(runtime, run_id).status == "CANCELED"
        assert [s.node_id for s in steps_of(runtime, run_id)] == ["trigger"]

    def test_a_run_claimed_before_the_sweep_reaches_it_is_canceled_at_its_commit(
        self, runtime, workspace
    ):
        """A batch of one: the sweep has not reached the second run, yet the worker that
        claims it (after the deactivation) cancels it rather than walk it."""
        install(runtime, workspace.id, drip())
        ids = start(runtime, workspace.id, "drip", count=2)
        assert _deactivate(runtime, workspace.id, batch=1) == (2, 1)
        drain(runtime)
        assert _statuses(runtime, ids) == {"CANCELED": 2}
        for run_id in ids:
            assert [s.node_id for s in steps_of(runtime, run_id)] == ["trigger"]

    def test_a_cancel_in_progress_is_shown_on_the_workflow(self, runtime, workspace):
        install(runtime, workspace.id, drip())
        park(runtime, workspace.id, "drip", 30, now=runtime.clock() - timedelta(minutes=1))
        _deactivate(runtime, workspace.id, batch=10)
        with session_scope(runtime.sessions) as session:
            found = workflow_service.detail(session, workspace_id=workspace.id, key="drip")
        assert found.canceling == workflow_service.Cancellation(to_cancel=30, canceled=10)


BY_OLGA = ("deactivation", "workflow drip was deactivated by olga@acme.test")


def _named(runtime: Runtime, ids) -> set[tuple[str | None, str | None, str]]:
    with session_scope(runtime.sessions) as session:
        rows = session.execute(select(WorkflowRun.canceled_by, WorkflowRun.cancel_reason,
                                      WorkflowRun.status).where(WorkflowRun.id.in_(ids)))
        return {tuple(row) for row in rows}


class TestWhoCanceled:
    """Each run a deactivation cancels says so, and who deactivated the workflow, whichever
    path stops it: the request's batch, the sweep, or the worker that holds it."""

    def test_the_request_batch_and_the_sweep_name_the_deactivation(
        self, runtime, workspace, settings
    ):
        install(runtime, workspace.id, drip())
        ids = park(runtime, workspace.id, "drip", 30, now=runtime.clock())

        _deactivate(runtime, workspace.id, batch=10, actor="olga@acme.test")
        Worker(runtime, settings).cancel_once()
        Worker(runtime, settings).cancel_once()

        assert _named(runtime, ids) == {(*BY_OLGA, "CANCELED")}

    def test_an_api_key_deactivating_is_named_as_one(self, runtime, workspace):
        install(runtime, workspace.id, drip())
        ids = park(runtime, workspace.id, "drip", 2, now=runtime.clock())

        _deactivate(runtime, workspace.id, actor="key:rf_1a2b3c")

        assert _named(runtime, ids) == {
            ("deactivation", "workflow drip was deactivated by API key rf_1a2b3c", "CANCELED")}

    def test_a_held_run_is_named_at_once_and_keeps_it_when_its_worker_stops(
        self, runtime, workspace
    ):
        install(runtime, workspace.id, drip())
        [run_id] = start(runtime, workspace.id, "drip", email="h@example.com")
        walkers = walk.claim(runtime, worker="w", limit=10, lease_seconds=30)

        _deactivate(runtime, workspace.id, actor="olga@acme.test")
        assert _named(runtime, [run_id]) == {(*BY_OLGA, "PENDING")}  # flagged, still held

        walk.commit(runtime, walkers)
        assert _named(runtime, [run_id]) == {(*BY_OLGA, "CANCELED")}

    def test_a_run_the_worker_stops_before_the_sweep_reaches_it_is_named_by_the_worker(
        self, runtime, workspace
    ):
        install(runtime, workspace.id, drip())
        ids = start(runtime, workspace.id, "drip", count=2)
        walkers = walk.claim(runtime, worker="w", limit=10, lease_seconds=30)
        _deactivate(runtime, workspace.id, batch=1, actor="olga@acme.test")  # flags one

        for walker in walkers:
            walker.walk(walk.make_child_starter(runtime))
        walk.commit(runtime, walkers)  # the other is stopped by its worker's commit

        assert _named(runtime, ids) == {(*BY_OLGA, "CANCELED")}

    def test_a_run_claimed_after_the_deactivation_is_named_when_it_is_loaded(
        self, runtime, workspace
    ):
        install(runtime, workspace.id, drip())
        ids = start(runtime, workspace.id, "drip", count=2)
        _deactivate(runtime, workspace.id, batch=1, actor="olga@acme.test")

        drain(runtime)

        assert _named(runtime, ids) == {(*BY_OLGA, "CANCELED")}

    def test_an_operator_who_asked_first_is_kept(self, runtime, workspace):
        install(runtime, workspace.id, drip())
        [run_id] = start(runtime, workspace.id, "drip", email="h@example.com")
        walkers = walk.claim(runtime, worker="w", limit=10, lease_seconds=30)
        with session_scope(runtime.sessions) as session:
            run_service.cancel(session, workspace_id=workspace.id, run_id=run_id,
                               actor="ada@acme.test", now=runtime.clock(),
                               reason="wrong audience")

        _deactivate(runtime, workspace.id, actor="olga@acme.test")
        walk.commit(runtime, walkers)

        assert _named(runtime, [run_id]) == {
            ("member:ada@acme.test", "wrong audience", "CANCELED")}
