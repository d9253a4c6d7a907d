"""Workers killed with SIGKILL: another worker finishes their runs, repeating nothing."""

from __future__ import annotations

import signal
from collections import Counter

import pytest
from sqlalchemy import func, select

from relayflow.storage.db import session_scope
from relayflow.storage.models import DeliveryAttempt, Job, RunStep, WorkflowRun
from tests.support.flows import install, start, statuses
from tests.support.processes import start_worker, stop, wait_until

pytestmark = pytest.mark.slow
NODES = ["trigger", "lookup", "tag", "welcome", "done"]


def _flow(url: str) -> dict:
    return {"key": "crash", "trigger": {"type": "manual"}, "start": "lookup", "nodes": {
        "lookup": {"type": "INTEGRATION", "request": {"method": "POST", "url": url},
                   "capture": {"tier": "body.account.tier"}, "next": "tag"},
        "tag": {"type": "UPDATE_CONTACT", "set": {"tier": "{{ steps.lookup.tier }}"},
                "next": "welcome"},
        "welcome": {"type": "SEND_MESSAGE", "channel": "email", "subject": "Hi",
                    "body": "Your tier is {{ steps.lookup.tier }}", "next": "done"},
        "done": {"type": "END"}}}


def _assert_each_step_once(runtime, run_ids) -> None:
    with session_scope(runtime.sessions) as session:
        rows = session.execute(select(RunStep.run_id, RunStep.node_id, RunStep.seq)).all()
        attempts = session.execute(select(DeliveryAttempt.run_id)).scalars().all()
        assert session.scalar(select(func.count()).select_from(Job)) == 0
    per_run: dict = {}
    for run_id, node_id, seq in rows:
        per_run.setdefault(run_id, []).append((seq, node_id))
    for run_id in run_ids:
        visited = sorted(per_run[run_id])
        assert [node for _, node in visited] == NODES, visited
        assert [seq for seq, _ in visited] == list(range(len(NODES)))
    assert Counter(attempts) == dict.fromkeys(run_ids, 1)


class TestCrashPoints:
    @pytest.mark.parametrize("point", ["after_claim", "after_intent", "after_effect",
                                       "after_commit"])
    def test_next_worker_finishes_without_repeating(self, point, settings, runtime, workspace,
                                                     http_server):
        install(runtime, workspace.id, _flow(f"{http_server.url}/json"))
        run_ids = start(runtime, workspace.id, "crash", email="k@example.com", count=3)
        doomed = start_worker(settings, fault=point)
        assert doomed.wait(30) == -signal.SIGKILL
        rescuer = start_worker(settings)
        try:
            wait_until(lambda: statuses(runtime) == {"COMPLETED": 3}, timeout=60,
                       what=f"runs to complete after a crash {point}")
        finally:
            stop(rescuer)
        _assert_each_step_once(runtime, run_ids)
        # The INTEGRATION target may see a request again after a crash, but always with the
        # same Idempotency-Key: one logical request per run.
        assert len(set(http_server.keys())) == 3
        if point in ("after_claim", "after_commit"):
            assert len(http_server.requests) == 3


class TestKilledFromOutside:
    def test_sigkill_mid_batch(self, settings, runtime, workspace, http_server):
        install(runtime, workspace.id, _flow(f"{http_server.url}/slow/0.1"))
        run_ids = start(runtime, workspace.id, "crash", email="m@example.com", count=24)
        victim = start_worker(settings)
        wait_until(lambda: len(http_server.requests) >= 4, timeout=30, what="work to start")
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
        done_before = statuses(runtime).get("COMPLETED", 0)
        assert done_before < 24
        rescuer = start_worker(settings)
        try:
            wait_until(lambda: statuses(runtime) == {"COMPLETED": 24}, timeout=90,
                       what="all runs to complete")
        finally:
            stop(rescuer)
        _assert_each_step_once(runtime, run_ids)
        assert len(set(http_server.keys())) == 24


@pytest.mark.postgres_only
class TestTwoWorkersOnPostgres:
    def test_each_step_exactly_once_over_200_runs(self, settings, runtime, workspace,
                                                 http_server):
        install(runtime, workspace.id, _flow(f"{http_server.url}/json"))
        run_ids = start(runtime, workspace.id, "crash", email="p@example.com", count=200)
        workers = [start_worker(settings, lease_seconds=5) for _ in range(2)]
        try:
            wait_until(lambda: statuses(runtime) == {"COMPLETED": 200}, timeout=120,
                       what="200 runs to complete")
        finally:
            for w in workers:
                stop(w)
        _assert_each_step_once(runtime, run_ids)
        assert len(http_server.requests) == 200
        with session_scope(runtime.sessions) as session:
            assert session.scalar(select(func.count()).select_from(WorkflowRun)) == 200
