"""Workers fire schedule ticks from their loop; several of them never double a tick."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from relayflow.services import contact as contact_service
from relayflow.services.runtime import Runtime, SecretCipher
from relayflow.storage.db import make_engine, make_sessionmaker, session_scope
from relayflow.storage.models import WorkflowRun
from relayflow.worker.loop import Worker
from tests.support.flows import install
from tests.support.processes import start_worker, stop, wait_until


def _schedule_at(at: datetime) -> dict:
    return {"key": "launch", "trigger": {"type": "schedule", "at": at.isoformat()},
            "start": "done", "nodes": {"done": {"type": "END"}}}


def _add_contacts(runtime, workspace_id, count: int) -> None:
    with session_scope(runtime.sessions) as session:
        for i in range(count):
            contact_service.resolve(session, workspace_id=workspace_id,
                                    spec={"email": f"w{i}@example.com"}, now=runtime.clock())


def _runs(runtime) -> list[tuple[str, str, object]]:
    with session_scope(runtime.sessions) as session:
        return [tuple(row) for row in session.execute(
            select(WorkflowRun.status, WorkflowRun.trigger_type, WorkflowRun.contact_id))]


class TestWorkerProcesses:
    pytestmark = pytest.mark.slow

    def test_three_workers_fire_a_tick_once_per_contact(self, settings, runtime, workspace,
                                                        monkeypatch):
        monkeypatch.setenv("RELAYFLOW_SCHEDULE_POLL_SECONDS", "0.1")
        _add_contacts(runtime, workspace.id, 30)
        install(runtime, workspace.id, _schedule_at(datetime.now(UTC) + timedelta(seconds=3)))
        workers = [start_worker(settings) for _ in range(3)]
        try:
            wait_until(lambda: Counter(s for s, _, _ in _runs(runtime)) == {"COMPLETED": 30},
                       timeout=30, what="30 scheduled runs to complete")
            time.sleep(1.0)  # ten more schedule polls by every worker: none may open a run
            assert all(w.poll() is None for w in workers)
        finally:
            for worker in workers:
                stop(worker)
        runs = _runs(runtime)
        assert len(runs) == 30
        assert len({contact for _, _, contact in runs}) == 30
        assert {trigger for _, trigger, _ in runs} == {"schedule"}


class TestScheduleOnce:
    def test_fires_due_ticks_then_waits_schedule_poll_seconds(self, settings, runtime,
                                                              workspace):
        now = datetime(2026, 12, 1, 12, tzinfo=UTC)
        runtime.clock = lambda: now
        _add_contacts(runtime, workspace.id, 2)
        install(runtime, workspace.id, _schedule_at(now))
        worker = Worker(runtime, settings.model_copy(update={"schedule_poll_seconds": 3600}))
        assert worker.schedule_once() == 2
        install(runtime, workspace.id, {**_schedule_at(now), "key": "second"})
        assert worker.schedule_once() == 0  # not yet time to look again
        assert Worker(runtime, settings).schedule_once() == 2  # a worker due to look fires it

    def test_the_idle_wait_ends_when_a_schedule_look_is_due(self, settings, runtime):
        worker = Worker(runtime, settings.model_copy(update={"schedule_poll_seconds": 0.01,
                                                             "poll_seconds": 30}))
        worker.schedule_once()
        assert worker._idle_seconds() <= 0.01

    def test_a_failing_tick_is_logged_and_the_loop_goes_on(self, settings, tmp_path, caplog):
        engine = make_engine(f"sqlite:///{tmp_path}/missing/relayflow.db")
        broken = Runtime(sessions=make_sessionmaker(engine), cipher=SecretCipher("k"))
        try:
            assert Worker(broken, settings).schedule_once() == 0
        finally:
            engine.dispose()
        assert "schedule tick failed" in caplog.text
