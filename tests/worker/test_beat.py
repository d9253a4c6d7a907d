"""Worker beats: a running worker is known to the database, a stopped one is not."""

from __future__ import annotations

from sqlalchemy import select

from relayflow.services import workers as workers_service
from relayflow.storage.db import session_scope
from relayflow.storage.models import WorkerBeat
from tests.support.processes import start_worker, stop, wait_until


def _beats(runtime) -> dict[str, WorkerBeat]:
    with session_scope(runtime.sessions) as session:
        return {b.name: b for b in session.scalars(select(WorkerBeat))}


def test_a_worker_beats_while_it_runs_and_signs_off_when_stopped(settings, runtime):
    worker = start_worker(settings, lease_seconds=0.4, ready=True)  # beats every 0.1 s
    try:
        [name] = _beats(runtime)
        assert f":{worker.pid}:" in name
        first = _beats(runtime)[name].seen_at
        wait_until(lambda: _beats(runtime)[name].seen_at > first, timeout=10,
                   what="a second beat")
        assert _beats(runtime)[name].started_at < _beats(runtime)[name].seen_at
        assert workers_service.alive(runtime, within_seconds=5) == [name]
    finally:
        stop(worker)
    assert worker.returncode == 0
    assert _beats(runtime) == {}


def test_a_killed_workers_beat_goes_stale(settings, runtime):
    worker = start_worker(settings, lease_seconds=0.4, ready=True)
    worker.kill()
    worker.wait()
    [name] = _beats(runtime)  # nobody signed off
    wait_until(lambda: workers_service.alive(runtime, within_seconds=0.5) == [],
               timeout=10, what="the beat to age")
    assert workers_service.alive(runtime, within_seconds=3600) == [name]
