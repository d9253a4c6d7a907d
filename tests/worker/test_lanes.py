"""A worker's lanes: a run that falls due while a batch waits on a slow effect is walked at
once by another lane, not after that batch ends."""

from __future__ import annotations

import threading
import time
import uuid

from sqlalchemy import select

from relayflow.storage.db import read_scope
from relayflow.storage.models import WorkflowRun
from relayflow.worker.loop import LANES, Worker
from tests.support.flows import install, start
from tests.support.processes import wait_until

SLOW_SECONDS = 3.0


def _status(runtime, run_id: uuid.UUID) -> str:
    with read_scope(runtime.sessions) as session:
        return str(session.scalar(select(WorkflowRun.status).where(WorkflowRun.id == run_id)))


def test_a_run_due_while_a_batch_waits_on_a_slow_call_is_walked_at_once(
    settings, runtime, workspace, http_server
):
    assert LANES >= 2
    url = f"{http_server.url}/slow/{SLOW_SECONDS}"
    install(runtime, workspace.id, {
        "key": "slow", "trigger": {"type": "manual"}, "start": "call", "nodes": {
            "call": {"type": "INTEGRATION", "next": "done", "timeout": 10,
                     "request": {"method": "POST", "url": url}},
            "done": {"type": "END"}}})
    install(runtime, workspace.id, {"key": "quick", "trigger": {"type": "manual"},
                                    "start": "done", "nodes": {"done": {"type": "END"}}})
    # Polls far apart: only a wake moves a run quickly.
    worker = Worker(runtime, settings.model_copy(update={"poll_seconds": 30,
                                                         "worker_concurrency": 8}))
    thread = threading.Thread(target=worker.run_forever, daemon=True)
    thread.start()
    try:
        slow = start(runtime, workspace.id, "slow", email="slow@example.com")[0]
        worker.wake()
        wait_until(lambda: _status(runtime, slow) == "RUNNING", timeout=10,
                   what="the slow call to be in flight")
        time.sleep(0.3)  # the call has left: its batch now waits on it
        began = time.monotonic()
        quick = start(runtime, workspace.id, "quick", email="quick@example.com")[0]
        worker.wake()
        wait_until(lambda: _status(runtime, quick) == "COMPLETED", timeout=10,
                   what="the quick run to complete")
        waited = time.monotonic() - began
        assert _status(runtime, slow) == "RUNNING"  # its call is still out
        assert waited < SLOW_SECONDS / 2, waited
        wait_until(lambda: _status(runtime, slow) == "COMPLETED", timeout=15,
                   what="the slow run to complete")
    finally:
        worker.stop()
        thread.join(15)
    assert not thread.is_alive()


def test_every_lane_that_falls_idle_after_a_stop_returns_at_once(settings, runtime):
    worker = Worker(runtime, settings.model_copy(update={"poll_seconds": 60}))
    worker.stop()
    idled: list[float] = []

    def two_lanes_fall_idle() -> None:
        for _ in range(2):  # the first takes the stop's wake, the second comes after
            began = time.monotonic()
            worker._idle(60)
            idled.append(time.monotonic() - began)

    thread = threading.Thread(target=two_lanes_fall_idle, daemon=True)
    thread.start()
    thread.join(10)

    assert len(idled) == 2, "a lane waited out its poll after the worker was stopped"
    assert max(idled) < 1
