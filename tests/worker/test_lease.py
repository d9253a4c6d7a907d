"""Leases: fencing refuses a stale worker's writes; heartbeats keep a slow step owned."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from relayflow.services import walk
from relayflow.storage.db import session_scope
from relayflow.storage.models import Job
from tests.support.flows import install, run_of, start, statuses, steps_of
from tests.support.processes import start_worker, stop, wait_until

FLOW = {"key": "fenced", "trigger": {"type": "manual"}, "start": "tag", "nodes": {
    "tag": {"type": "UPDATE_CONTACT", "set": {"seen": "yes"}, "next": "done"},
    "done": {"type": "END"}}}


class TestFencing:
    def test_a_worker_whose_lease_expired_writes_nothing(self, runtime, workspace):
        install(runtime, workspace.id, FLOW)
        [run_id] = start(runtime, workspace.id, "fenced", email="f@example.com")
        stale = walk.claim(runtime, worker="stale", limit=10, lease_seconds=30)
        assert [w.run_id for w in stale] == [run_id]
        with session_scope(runtime.sessions) as session:  # the stale worker stalls past its lease
            session.execute(update(Job).values(
                lease_expires_at=runtime.clock() - timedelta(seconds=1)))
        fresh = walk.claim(runtime, worker="fresh", limit=10, lease_seconds=30)
        assert fresh[0].token == stale[0].token + 1

        for walker in stale:
            walker.walk(walk.make_child_starter(runtime))
        walk.commit(runtime, stale)
        assert stale[0].dropped
        assert [s.seq for s in steps_of(runtime, run_id)] == [0]  # 0 rows written
        assert run_of(runtime, run_id).status == "PENDING"

        for walker in fresh:
            walker.walk(walk.make_child_starter(runtime))
        walk.commit(runtime, fresh)
        assert run_of(runtime, run_id).status == "COMPLETED"
        assert [s.node_id for s in steps_of(runtime, run_id)] == ["trigger", "tag", "done"]


@pytest.mark.slow
class TestHeartbeat:
    def test_a_step_longer_than_the_lease_is_not_taken_over(self, settings, runtime, workspace,
                                                           http_server):
        install(runtime, workspace.id, {
            "key": "slow", "trigger": {"type": "manual"}, "start": "call", "nodes": {
                "call": {"type": "INTEGRATION", "timeout": 10,
                         "request": {"method": "GET", "url": f"{http_server.url}/slow/3"},
                         "next": "done"},
                "done": {"type": "END"}}})
        start(runtime, workspace.id, "slow", email="s@example.com")
        workers = [start_worker(settings, lease_seconds=1.0) for _ in range(2)]
        try:
            wait_until(lambda: statuses(runtime) == {"COMPLETED": 1}, timeout=30,
                       what="the slow run to complete")
        finally:
            for w in workers:
                stop(w)
        assert len(http_server.requests) == 1  # 3 s step, 1 s lease: renewed, never stolen
