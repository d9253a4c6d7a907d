"""A webhook's or an unsubscribe link's token is a credential, and a query's values may name
a person: neither reaches the logs of a running `relayflow serve`, neither its access log
nor the intake's own lines."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from relayflow.services import workflow as workflow_service
from relayflow.services import workspace as workspace_service
from relayflow.storage.db import make_engine, make_sessionmaker, session_scope
from relayflow.storage.migrate import upgrade
from tests.support.processes import wait_until
from tests.support.server import Served, request, serve

HOOK = {"key": "hook", "trigger": {"type": "webhook"}, "start": "done",
        "nodes": {"done": {"type": "END"}}}
UNSUBSCRIBE_TOKEN = "unsubscribe-token-canary-4f1e"
ADDRESS = "canary.person@example.com"


@pytest.fixture
def webhook(tmp_path: Path) -> Iterator[tuple[Served, str]]:
    url = f"sqlite:///{tmp_path / 'relayflow.db'}"
    upgrade(url)
    engine = make_engine(url)
    now = datetime.now(UTC)
    with session_scope(make_sessionmaker(engine)) as session:
        workspace, _ = workspace_service.create(session, slug="acme", name=None, now=now)
        workflow_service.save(session, workspace_id=workspace.id, definition=HOOK, now=now)
        workflow = workflow_service.activate(session, workspace_id=workspace.id, key="hook",
                                             actor="test", now=now)
        token = str(workflow.webhook_token)
    engine.dispose()
    with serve(url, tmp_path) as served:
        yield served, token


def _post(path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


def test_tokens_never_reach_the_serve_logs(webhook: tuple[Served, str]) -> None:
    served, token = webhook
    status, _, _ = request(served, _post(f"/hooks/{token}", json.dumps({"n": 1}).encode()))
    assert status == 202
    request(served, _post(f"/u/{UNSUBSCRIBE_TOKEN}", b""))
    # A search or a contact filter names a person: the query's values stay out too.
    request(served, f"GET /api/v1/runs?q={ADDRESS}&contact={ADDRESS} HTTP/1.1\r\n"
                    f"Host: t\r\nConnection: close\r\n\r\n".encode())
    with served.connect() as sock:  # hangs up half-way through a body: one INFO line
        sock.sendall(_post(f"/hooks/{token}", b"{")[:-1].replace(b"Length: 1", b"Length: 99"))
        sock.shutdown(socket.SHUT_WR)
    wait_until(lambda: "went away" in served.stderr(), timeout=10,
               what="the intake's line about the client that went away")

    log = served.stderr()
    assert f"/hooks/{token[:4]}" not in log.replace("/hooks/…", "")
    assert token not in log
    assert UNSUBSCRIBE_TOKEN not in log
    assert ADDRESS not in log
    assert "GET /api/v1/runs?q=…&contact=… HTTP/1.1" in log
    assert "POST /hooks/… HTTP/1.1" in log  # the access log still names the route
