"""A page or a list that is reading holds no lock a write needs: while a read transaction
is open (as every GET's is, web/deps.get_session), a run is triggered and committed. On
SQLite the reader keeps the view its transaction began with (WAL); on PostgreSQL each
statement reads what was committed when it began (READ COMMITTED)."""

from __future__ import annotations

import threading

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from relayflow.storage.db import read_scope
from relayflow.storage.models import WorkflowRun
from relayflow.web.app import create_app
from tests.support.flows import install

FLOW = {"key": "ping", "trigger": {"type": "manual"}, "start": "done",
        "nodes": {"done": {"type": "END"}}}
# Far beyond a trigger's time on an idle machine, far below a writer's wait for a lock
# (storage/db.py waits 60 s): a trigger held up by the reader fails here.
PATIENCE_SECONDS = 20


def _runs(session) -> int:
    return session.scalar(select(func.count()).select_from(WorkflowRun)) or 0


def test_a_trigger_commits_while_a_reader_is_reading(settings, runtime, workspace,
                                                     is_postgres) -> None:
    install(runtime, workspace.id, FLOW)
    answers: list[int] = []
    with TestClient(create_app(settings, runtime=runtime), headers=workspace.headers) as client:
        def trigger() -> None:
            answers.append(client.post("/api/v1/workflows/ping/runs", json={}).status_code)

        with read_scope(runtime.sessions) as reader:
            before = _runs(reader)  # the read transaction has begun
            writer = threading.Thread(target=trigger)
            writer.start()
            writer.join(PATIENCE_SECONDS)
            assert not writer.is_alive(), "the trigger waited for the reader"
            assert answers == [202]
            assert _runs(reader) == before + (1 if is_postgres else 0)
        with read_scope(runtime.sessions) as later:
            assert _runs(later) == before + 1
