"""Runs reaching every status through the real services and storage."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from relayflow.errors import Conflict
from relayflow.services import run as run_service
from relayflow.services import workflow as workflow_service
from relayflow.storage.db import session_scope
from relayflow.storage.models import Contact, Job, WorkflowRun
from tests.support.flows import install, run_of, start, steps_of
from tests.support.worker import drain


def _flow(key: str, nodes: dict, start_node: str = "first") -> dict:
    return {"key": key, "trigger": {"type": "manual"}, "start": start_node, "nodes": nodes}


class TestCompleted:
    def test_every_node_recorded_in_order_with_trigger_step_zero(self, runtime, workspace):
        install(runtime, workspace.id, _flow("tagger", {
            "first": {"type": "CONDITION", "when": "contact.plan == 'pro'",
                      "then": "tag", "else": "done"},
            "tag": {"type": "UPDATE_CONTACT", "set": {"segment": "{{ contact.plan }}-vip"},
                    "next": "ab"},
            "ab": {"type": "SPLIT", "branches": [{"name": "a", "weight": 1, "next": "done"},
                                                 {"name": "b", "weight": 1, "next": "done"}]},
            "done": {"type": "END"},
        }))
        [run_id] = start(runtime, workspace.id, "tagger", email="Ann@Example.com",
                         attributes={"plan": "pro"})
        drain(runtime)
        run = run_of(runtime, run_id)
        assert run.status == "COMPLETED"
        assert run.started_at is not None
        assert run.finished_at is not None
        steps = steps_of(runtime, run_id)
        assert [(s.seq, s.node_id, s.status) for s in steps] == [
            (0, "trigger", "COMPLETED"), (1, "first", "COMPLETED"), (2, "tag", "COMPLETED"),
            (3, "ab", "COMPLETED"), (4, "done", "COMPLETED")]
        assert steps[0].node_type == "TRIGGER"
        assert steps[1].branch == "then"
        assert steps[3].branch in ("a", "b")
        with session_scope(runtime.sessions) as session:
            contact = session.scalar(select(Contact).where(Contact.email == "ann@example.com"))
            assert contact is not None
            assert contact.attributes["segment"] == "pro-vip"
            assert session.get(Job, run_id) is None


class TestFailed:
    def test_stop_error_message_is_the_run_error(self, runtime, workspace):
        install(runtime, workspace.id, _flow("stopper", {
            "first": {"type": "STOP_ERROR", "message": "no plan for {{ contact.email }}"}}))
        [run_id] = start(runtime, workspace.id, "stopper", email="bo@example.com")
        drain(runtime)
        run = run_of(runtime, run_id)
        assert run.status == "FAILED"
        assert run.error == "no plan for bo@example.com"
        assert steps_of(runtime, run_id)[-1].status == "FAILED"

    def test_a_node_that_throws_fails_the_run_with_the_exception(self, runtime, workspace):
        install(runtime, workspace.id, _flow("thrower", {
            "first": {"type": "CONDITION", "when": "contact.missing_attribute > 3",
                      "then": "done", "else": "done"},
            "done": {"type": "END"}}))
        [run_id] = start(runtime, workspace.id, "thrower", email="cy@example.com")
        drain(runtime)
        run = run_of(runtime, run_id)
        assert run.status == "FAILED"
        assert run.error is not None
        assert run.error.startswith("UndefinedError")
        assert "missing_attribute" in run.error
        failed = steps_of(runtime, run_id)[-1]
        assert (failed.node_id, failed.status, failed.error) == ("first", "FAILED", run.error)

    def test_sandbox_escape_fails_the_run_and_executes_nothing(self, runtime, workspace):
        install(runtime, workspace.id, _flow("escape", {
            "first": {"type": "UPDATE_CONTACT",
                      "set": {"x": "{{ ''.__class__.__mro__[1].__subclasses__() }}"},
                      "next": "done"},
            "done": {"type": "END"}}))
        [run_id] = start(runtime, workspace.id, "escape", email="ev@example.com")
        drain(runtime)
        run = run_of(runtime, run_id)
        assert run.status == "FAILED"
        assert "SecurityError" in (run.error or "")


WAIT_FLOW = _flow("waiter", {
    "first": {"type": "WAIT", "duration": "2h", "next": "done"},
    "done": {"type": "END"}})


class TestWait:
    def test_parks_without_a_lease_and_resumes_when_due(self, runtime, workspace):
        base = runtime.clock()
        runtime.clock = lambda: base
        install(runtime, workspace.id, WAIT_FLOW)
        [run_id] = start(runtime, workspace.id, "waiter", email="w@example.com")
        drain(runtime)
        run = run_of(runtime, run_id)
        assert run.status == "RUNNING"
        assert run.wake_at == base + timedelta(hours=2)
        assert steps_of(runtime, run_id)[-1].status == "WAITING"
        with session_scope(runtime.sessions) as session:
            job = session.get(Job, run_id)
            assert job is not None
            assert job.lease_owner is None
            assert job.lease_expires_at is None
            assert job.due_at == base + timedelta(hours=2)

        runtime.clock = lambda: base + timedelta(hours=1, minutes=59)
        assert drain(runtime) == 0  # not due yet: nothing claimed
        runtime.clock = lambda: base + timedelta(hours=2, seconds=1)
        drain(runtime)
        run = run_of(runtime, run_id)
        assert run.status == "COMPLETED"
        waited = steps_of(runtime, run_id)[1]
        assert waited.status == "COMPLETED"
        assert waited.duration_ms == 2 * 3600 * 1000 + 1000


class TestCancel:
    def test_operator_cancels_a_parked_run_at_once(self, runtime, workspace):
        install(runtime, workspace.id, WAIT_FLOW)
        [run_id] = start(runtime, workspace.id, "waiter", email="w@example.com")
        drain(runtime)
        with session_scope(runtime.sessions) as session:
            run_service.cancel(session, workspace_id=workspace.id, run_id=run_id, actor="t",
                               now=runtime.clock())
        run = run_of(runtime, run_id)
        assert run.status == "CANCELED"
        assert steps_of(runtime, run_id)[-1].status == "CANCELED"
        with session_scope(runtime.sessions) as session:
            assert session.get(Job, run_id) is None
            with pytest.raises(Conflict):
                run_service.cancel(session, workspace_id=workspace.id, run_id=run_id,
                                   actor="t", now=runtime.clock())

    def test_cancel_of_a_held_run_takes_effect_at_the_next_boundary(self, runtime, workspace):
        install(runtime, workspace.id, _flow("two", {
            "first": {"type": "UPDATE_CONTACT", "set": {"a": "1"}, "next": "done"},
            "done": {"type": "END"}}))
        [run_id] = start(runtime, workspace.id, "two", email="h@example.com")
        from relayflow.services import walk

        walkers = walk.claim(runtime, worker="w", limit=10, lease_seconds=30)
        with session_scope(runtime.sessions) as session:
            canceled = run_service.cancel(session, workspace_id=workspace.id, run_id=run_id,
                                          actor="t", now=runtime.clock())
            assert canceled.status == "PENDING"  # a worker holds it: flagged, not yet final
        for walker in walkers:
            walker.walk(walk.make_child_starter(runtime))
        walk.commit(runtime, walkers)
        run = run_of(runtime, run_id)
        assert run.status == "CANCELED"
        assert [s.node_id for s in steps_of(runtime, run_id)] == ["trigger"]
        with session_scope(runtime.sessions) as session:
            contact = session.scalar(select(Contact).where(Contact.email == "h@example.com"))
            assert contact is not None
            assert "a" not in contact.attributes

    def test_deactivate_cancels_in_flight_runs(self, runtime, workspace):
        install(runtime, workspace.id, WAIT_FLOW)
        ids = start(runtime, workspace.id, "waiter", email="d@example.com", count=3)
        drain(runtime)
        with session_scope(runtime.sessions) as session:
            workflow, canceled = workflow_service.deactivate(
                session, workspace_id=workspace.id, key="waiter", actor="t", now=runtime.clock())
            assert canceled == 3
            assert workflow.status == "INACTIVE"
        with session_scope(runtime.sessions) as session:
            found = session.scalars(select(WorkflowRun.status)
                                    .where(WorkflowRun.id.in_(ids))).all()
        assert found == ["CANCELED"] * 3


class TestTerminalRunsNeverChange:
    def test_a_stale_job_for_a_finished_run_is_dropped(self, runtime, workspace):
        install(runtime, workspace.id, _flow("quick", {"first": {"type": "END"}}))
        [run_id] = start(runtime, workspace.id, "quick", email="q@example.com")
        drain(runtime)
        finished = run_of(runtime, run_id)
        with session_scope(runtime.sessions) as session:
            session.add(Job(run_id=run_id, workspace_id=workspace.id, due_at=runtime.clock()))
        drain(runtime)
        again = run_of(runtime, run_id)
        assert (again.status, again.finished_at) == (finished.status, finished.finished_at)
        assert len(steps_of(runtime, run_id)) == 2


class TestTriggerWorkflow:
    def test_child_run_links_its_parent(self, runtime, workspace):
        install(runtime, workspace.id, _flow("child", {"first": {"type": "END"}}))
        install(runtime, workspace.id, _flow("parent", {
            "first": {"type": "TRIGGER_WORKFLOW", "workflow": "child", "next": "done"},
            "done": {"type": "END"}}))
        [run_id] = start(runtime, workspace.id, "parent", email="p@example.com")
        drain(runtime)
        step = steps_of(runtime, run_id)[1]
        child = run_of(runtime, __import__("uuid").UUID(step.output["run_id"]))
        assert child.parent_run_id == run_id
        assert child.status == "COMPLETED"
        assert child.contact_id == run_of(runtime, run_id).contact_id
