"""Deactivating a workflow with thousands of parked runs, against a real `relayflow serve`.

Deactivation used to cancel every in-flight run inside the request, one by one: with 15,000
runs parked at a WAIT it was one request of 30 s on SQLite (holding the write lock, so
every other workflow's webhook waited as long) and minutes on PostgreSQL. Now the request
marks the workflow and cancels one batch (Runtime.cancel_batch_size), and the workers
cancel the rest in short transactions of one batch each, while other work keeps flowing.

5,000 runs here (about 10 s on SQLite, 20 s on PostgreSQL, mostly the seeding and the
server's start); bench/deactivate.py measures 15,000.
"""

from __future__ import annotations

import time

import httpx
from sqlalchemy import func, select

from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import RunStep, WorkflowRun
from tests.support.flows import install, now
from tests.support.parked import drip, park
from tests.support.processes import wait_until
from tests.support.server import serve

RUNS = 5_000
# Generous for a loaded 2-core machine; before the change the answer took about 10 s.
PROMPT = 2.0
PING = {"key": "ping", "name": "Ping", "trigger": {"type": "webhook"}, "start": "done",
        "nodes": {"done": {"type": "END"}}}


def _count(runtime: Runtime, *conditions: object) -> int:
    with session_scope(runtime.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(WorkflowRun)
                                  .where(*conditions)) or 0)  # type: ignore[arg-type]


def test_deactivation_answers_at_once_and_the_workers_cancel_the_rest(
    db_url, runtime, workspace, tmp_path
):
    install(runtime, workspace.id, drip())
    install(runtime, workspace.id, PING)
    parked = park(runtime, workspace.id, "drip", RUNS, now=now())
    with serve(db_url, tmp_path) as served, httpx.Client(
        base_url=f"http://127.0.0.1:{served.port}", headers=workspace.headers, timeout=300
    ) as client:
        token = client.get("/api/v1/workflows/ping").json()["webhook_url"].rsplit("/", 1)[1]

        started = time.perf_counter()
        answer = client.post("/api/v1/workflows/drip/deactivate")
        answered = time.perf_counter() - started

        assert answer.status_code == 200, answer.text
        assert answered < PROMPT, f"the deactivation answered after {answered:.1f} s"
        body = answer.json()
        assert body["status"] == "INACTIVE"
        assert body["to_cancel"] == RUNS
        assert body["canceled"] <= runtime.cancel_batch_size

        # Another workflow's webhook, while the workers sweep: answered and walked promptly.
        started = time.perf_counter()
        hook = client.post(f"/hooks/{token}", json={"order": 1})
        hook_seconds = time.perf_counter() - started
        assert hook.status_code == 202, hook.text
        assert hook_seconds < PROMPT, f"the webhook answered after {hook_seconds:.1f} s"
        run_id = hook.json()["id"]
        wait_until(lambda: client.get(f"/api/v1/runs/{run_id}").json()["status"] == "COMPLETED",
                   timeout=10, what="the webhook's run to complete")

        wait_until(lambda: _count(runtime, WorkflowRun.status == "CANCELED") == RUNS,
                   timeout=120, what=f"all {RUNS} runs CANCELED")
        wait_until(lambda: client.get("/api/v1/workflows/drip").json()["canceling"] is None,
                   timeout=30, what="the sweep to be done")

    assert _count(runtime, WorkflowRun.id.in_(parked[:1])) == 1
    assert _count(runtime, WorkflowRun.status.in_(("PENDING", "RUNNING"))) == 0
    with session_scope(runtime.sessions) as session:
        open_steps = session.scalar(select(func.count()).select_from(RunStep)
                                    .where(RunStep.status == "WAITING"))
    assert open_steps == 0
