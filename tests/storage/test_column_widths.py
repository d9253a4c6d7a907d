"""Durations and counters hold the largest value the product lets them reach.

INTEGER stops at 2^31 - 1 on PostgreSQL (SQLite integers are 64-bit): 24.8 days in
milliseconds, or 2,147,483,647 claims, duplicates, steps or versions. Each test drives the
real code path past that point."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from relayflow.services import run as run_service
from relayflow.services import workflow as workflow_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import Job, RunStep, WorkflowRun, WorkflowVersion
from tests.support.flows import attempts_of, install, run_of, start, steps_of
from tests.support.worker import drain

INT32_MAX = 2**31 - 1
YEAR = timedelta(days=365)


def _flow(key: str, nodes: dict) -> dict:
    return {"key": key, "trigger": {"type": "manual"}, "start": "first", "nodes": nodes}


WAIT_THEN_SEND = _flow("waiter", {
    "first": {"type": "WAIT", "duration": "365d", "next": "send"},
    "send": {"type": "SEND_MESSAGE", "channel": "email", "subject": "s", "body": "b",
             "next": "done"},
    "done": {"type": "END"}})


def _frozen(runtime: Runtime) -> None:
    base = runtime.clock()
    runtime.clock = lambda: base


def _later(runtime: Runtime, by: timedelta) -> None:
    base = runtime.clock()
    runtime.clock = lambda: base + by


class TestYearLongWait:
    def test_runs_to_completion_and_its_step_holds_the_year(self, runtime, workspace):
        _frozen(runtime)
        install(runtime, workspace.id, WAIT_THEN_SEND)
        [run_id] = start(runtime, workspace.id, "waiter", email="y@example.com")
        drain(runtime)
        assert run_of(runtime, run_id).status == "RUNNING"
        _later(runtime, YEAR + timedelta(seconds=1))
        drain(runtime)
        run = run_of(runtime, run_id)
        assert (run.status, run.error) == ("COMPLETED", None)
        waited = steps_of(runtime, run_id)[1]
        assert (waited.node_id, waited.status) == ("first", "COMPLETED")
        assert waited.duration_ms == 365 * 86_400_000 + 1000  # 31,536,001,000 > 2^31 - 1
        [attempt] = attempts_of(runtime, run_id)
        assert attempt.status == "SENT"

    def test_runs_claimed_beside_it_are_not_held_back(self, runtime, workspace):
        # The worker commits a claimed batch in one transaction: a value that does not fit
        # would roll back every run claimed with the year-long one.
        _frozen(runtime)
        install(runtime, workspace.id, WAIT_THEN_SEND)
        install(runtime, workspace.id, _flow("quick", {"first": {"type": "END"}}))
        [waiter] = start(runtime, workspace.id, "waiter", email="y@example.com")
        drain(runtime)
        _later(runtime, YEAR + timedelta(seconds=1))
        quick = start(runtime, workspace.id, "quick", email="q@example.com", count=3)
        drain(runtime)
        assert [run_of(runtime, r).status for r in [waiter, *quick]] == ["COMPLETED"] * 4


class TestCountersPastInt32:
    def test_a_step_numbered_past_int32_is_recorded_with_its_message(self, runtime, workspace):
        # seq grows without bound in a looping workflow; step_seq on its messages mirrors it.
        _frozen(runtime)
        install(runtime, workspace.id, WAIT_THEN_SEND)
        [run_id] = start(runtime, workspace.id, "waiter", email="s@example.com")
        drain(runtime)
        with session_scope(runtime.sessions) as session:
            session.execute(update(RunStep).where(RunStep.run_id == run_id,
                                                  RunStep.status == "WAITING")
                            .values(seq=INT32_MAX))
        _later(runtime, YEAR + timedelta(seconds=1))
        drain(runtime)
        assert run_of(runtime, run_id).status == "COMPLETED"
        assert [s.seq for s in steps_of(runtime, run_id)][-3:] == [
            INT32_MAX, INT32_MAX + 1, INT32_MAX + 2]
        [attempt] = attempts_of(runtime, run_id)
        assert attempt.step_seq == INT32_MAX + 1

    def test_a_job_claimed_past_int32_times_still_runs(self, runtime, workspace):
        _frozen(runtime)
        install(runtime, workspace.id, WAIT_THEN_SEND)
        [run_id] = start(runtime, workspace.id, "waiter", email="j@example.com")
        with session_scope(runtime.sessions) as session:
            session.execute(update(Job).where(Job.run_id == run_id)
                            .values(lease_token=INT32_MAX, claims=INT32_MAX))
        drain(runtime)
        with session_scope(runtime.sessions) as session:
            job = session.get(Job, run_id)
            assert job is not None
            assert (job.lease_token, job.claims) == (INT32_MAX + 1, INT32_MAX + 1)
        assert steps_of(runtime, run_id)[-1].status == "WAITING"

    def test_duplicates_are_counted_past_int32(self, runtime, workspace):
        install(runtime, workspace.id, WAIT_THEN_SEND)
        with session_scope(runtime.sessions) as session:
            workflow = workflow_service.get(session, workspace_id=workspace.id, key="waiter")
            first = run_service.enroll(session, workflow=workflow, contact=None,
                                       trigger_type="manual", event={}, now=runtime.clock(),
                                       idempotency_key="k").run.id
        with session_scope(runtime.sessions) as session:
            session.execute(update(WorkflowRun).where(WorkflowRun.id == first)
                            .values(duplicates_ignored=INT32_MAX))
        with session_scope(runtime.sessions) as session:
            workflow = workflow_service.get(session, workspace_id=workspace.id, key="waiter")
            again = run_service.enroll(session, workflow=workflow, contact=None,
                                       trigger_type="manual", event={}, now=runtime.clock(),
                                       idempotency_key="k")
            assert again.run.id == first
        assert run_of(runtime, first).duplicates_ignored == INT32_MAX + 1

    def test_a_version_numbered_past_int32_is_followed_by_the_next(self, runtime, workspace):
        install(runtime, workspace.id, WAIT_THEN_SEND)
        with session_scope(runtime.sessions) as session:
            session.execute(update(WorkflowVersion).values(number=INT32_MAX))
        changed = {**WAIT_THEN_SEND, "name": "renamed"}
        install(runtime, workspace.id, changed)
        with session_scope(runtime.sessions) as session:
            numbers = sorted(session.scalars(select(WorkflowVersion.number)))
        assert numbers == [INT32_MAX, INT32_MAX + 1]

