"""Leases are timed by the database's clock: a worker whose own clock is wrong neither
takes a live lease nor loses its own.

Two claimers share one database; each has its own Runtime whose clock is injected (five
minutes ahead, five minutes behind, or true). Only lease decisions are at stake here: the
jobs are due by every claimer's clock (they were made due an hour before).
"""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta

from sqlalchemy import select, update

from relayflow.services import run as run_service
from relayflow.services import walk
from relayflow.services import workflow as workflow_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import Job
from relayflow.storage.repositories import job as job_repo
from tests.support.flows import install, run_of, start

SKEW = timedelta(minutes=5)
FLOW = {"key": "leased", "trigger": {"type": "manual"}, "start": "tag", "nodes": {
    "tag": {"type": "UPDATE_CONTACT", "set": {"seen": "yes"}, "next": "done"},
    "done": {"type": "END"}}}


def _skewed(runtime: Runtime, skew: timedelta) -> Runtime:
    return dataclasses.replace(runtime, clock=lambda: runtime.clock() + skew)


def _due_runs(runtime: Runtime, workspace_id, count: int = 3) -> None:
    install(runtime, workspace_id, FLOW)
    start(runtime, workspace_id, "leased", email="l@example.com", count=count)
    with session_scope(runtime.sessions) as session:  # due by any of the clocks below
        session.execute(update(Job).values(due_at=runtime.clock() - timedelta(hours=1)))


def _owners(runtime: Runtime) -> list[str | None]:
    with session_scope(runtime.sessions) as session:
        return list(session.scalars(select(Job.lease_owner)))


class TestClaim:
    def test_a_worker_ahead_does_not_take_a_live_lease(self, runtime, workspace):
        _due_runs(runtime, workspace.id)
        held = walk.claim(runtime, worker="true", limit=10, lease_seconds=30)
        assert len(held) == 3

        taken = walk.claim(_skewed(runtime, SKEW), worker="ahead", limit=10, lease_seconds=30)

        assert [w.run_id for w in taken] == []
        assert _owners(runtime) == ["true"] * 3

    def test_a_worker_behind_keeps_the_lease_it_took(self, runtime, workspace):
        _due_runs(runtime, workspace.id)
        held = walk.claim(_skewed(runtime, -SKEW), worker="behind", limit=10, lease_seconds=30)
        assert len(held) == 3

        taken = walk.claim(runtime, worker="true", limit=10, lease_seconds=30)

        assert [w.run_id for w in taken] == []
        assert _owners(runtime) == ["behind"] * 3

    def test_a_lease_taken_by_a_worker_ahead_lapses_on_time(self, runtime, workspace):
        _due_runs(runtime, workspace.id)
        ahead = walk.claim(_skewed(runtime, SKEW), worker="ahead", limit=10, lease_seconds=1)
        assert len(ahead) == 3
        time.sleep(1.5)  # the worker ahead is gone; its 1 s lease has run out

        taken = walk.claim(runtime, worker="true", limit=10, lease_seconds=30)

        assert len(taken) == 3
        assert _owners(runtime) == ["true"] * 3


class TestRenew:
    def test_a_worker_behind_renews_its_lease_into_the_future(self, runtime, workspace):
        _due_runs(runtime, workspace.id)
        behind = _skewed(runtime, -SKEW)
        walkers = walk.claim(behind, worker="behind", limit=10, lease_seconds=30)
        leases = [job_repo.Lease(w.run_id, w.token) for w in walkers]

        with session_scope(behind.sessions) as session:
            renewed = job_repo.renew(session, worker="behind", leases=leases, lease_seconds=30)
        taken = walk.claim(runtime, worker="true", limit=10, lease_seconds=30)

        assert renewed == 3
        assert [w.run_id for w in taken] == []
        with session_scope(runtime.sessions) as session:
            expires = list(session.scalars(select(Job.lease_expires_at)))
        now = runtime.clock()
        assert all(now + timedelta(seconds=20) < e < now + timedelta(seconds=40)
                   for e in expires), (now, expires)


class TestCancel:
    def test_a_cancel_from_a_clock_ahead_leaves_a_held_run_to_its_worker(self, runtime,
                                                                          workspace):
        _due_runs(runtime, workspace.id, count=1)
        [walker] = walk.claim(runtime, worker="true", limit=10, lease_seconds=30)
        ahead = _skewed(runtime, SKEW)

        with session_scope(ahead.sessions) as session:
            run_service.cancel(session, workspace_id=workspace.id, run_id=walker.run_id,
                               actor="t", now=ahead.clock())

        # Flagged for the worker holding it, not finished behind its back.
        assert run_of(runtime, walker.run_id).status != "CANCELED"
        with session_scope(runtime.sessions) as session:
            job = session.get(Job, walker.run_id)
            assert job is not None
            assert job.cancel_requested

    def test_a_deactivation_from_a_clock_ahead_leaves_a_held_run_to_its_worker(
        self, runtime, workspace
    ):
        _due_runs(runtime, workspace.id, count=2)
        [held] = walk.claim(runtime, worker="true", limit=1, lease_seconds=30)
        ahead = _skewed(runtime, SKEW)

        with session_scope(ahead.sessions) as session:
            workflow_service.deactivate(session, workspace_id=workspace.id, key="leased",
                                        actor="t", now=ahead.clock())

        assert run_of(runtime, held.run_id).status != "CANCELED"
        with session_scope(runtime.sessions) as session:
            job = session.get(Job, held.run_id)
            assert job is not None
            assert job.cancel_requested
            free = session.scalars(select(Job.run_id).where(Job.run_id != held.run_id)).all()
        assert free == []  # the run no worker held was canceled at once, its job gone
