"""100 cancels while a worker is mid-batch: no side effect starts after a cancel commits.

A worker claims 100 runs in one batch and commits all their INTEGRATION intents, then
calls them one at a time. As soon as the first call reaches the server (it answers after
300 ms), all 100 runs are canceled. The call already in flight finishes (a request cannot
be unsent) and nothing else leaves: each of the other 99 runs re-checks under its lease,
in a committed "calling now" step, just before its request, and sees the cancel.
"""

from __future__ import annotations

import threading
import time

import pytest

from relayflow.services import run as run_service
from relayflow.services import walk
from relayflow.services import workflow as workflow_service
from relayflow.storage.db import session_scope
from tests.support.flows import install, statuses, steps_of

pytestmark = pytest.mark.slow
RUNS = 100


def _flow(base: str) -> dict:
    return {"key": "calls", "trigger": {"type": "manual"}, "start": "first", "nodes": {
        "first": {"type": "INTEGRATION", "request": {"method": "POST",
                                                     "url": f"{base}/slow/0.3"},
                  "next": "second"},
        "second": {"type": "INTEGRATION", "request": {"method": "POST", "url": f"{base}/json"},
                   "next": "done"},
        "done": {"type": "END"}}}


def test_no_call_starts_after_the_cancel_commits(runtime, workspace, http_server):
    install(runtime, workspace.id, _flow(http_server.url))
    with session_scope(runtime.sessions) as session:
        workflow = workflow_service.get(session, workspace_id=workspace.id, key="calls")
        run_ids = [run_service.enroll(session, workflow=workflow, contact=None,
                                      trigger_type="manual", event={},
                                      now=runtime.clock()).run.id for _ in range(RUNS)]
    worker = threading.Thread(target=walk.advance, args=(runtime,),
                              kwargs={"worker": "w", "limit": RUNS, "lease_seconds": 60})
    worker.start()
    deadline = time.monotonic() + 30
    while not http_server.requests:
        assert time.monotonic() < deadline, "the worker made no call"
        time.sleep(0.002)
    with session_scope(runtime.sessions) as session:
        for run_id in run_ids:
            run_service.cancel(session, workspace_id=workspace.id, run_id=run_id,
                               actor="test", now=runtime.clock())
    calls_when_canceled = len(http_server.requests)
    worker.join(60)
    assert not worker.is_alive()
    assert calls_when_canceled == 1
    assert len(http_server.requests) == 1  # 0 side effects after the cancel committed
    assert statuses(runtime) == {"CANCELED": RUNS}
    walked = [[(s.node_id, s.status) for s in steps_of(runtime, run_id)] for run_id in run_ids]
    called = [w for w in walked if ("first", "COMPLETED") in w]
    assert len(called) == 1  # the call in flight is recorded with its result...
    assert all(("second", "COMPLETED") not in w for w in walked)  # ...and nothing follows
