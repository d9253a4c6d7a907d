"""A real `relayflow serve` (with its worker process, JSON log lines) against PostgreSQL
reached through a TCP proxy: /readyz follows real outages (the database cut, the worker
stopped with SIGSTOP) and their ends; /metrics sums what the worker process counted; every
log line is one JSON object, and no token reaches them."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from relayflow.services import workflow as workflow_service
from relayflow.services import workspace as workspace_service
from relayflow.storage.db import make_engine, make_sessionmaker, session_scope
from tests.support import tcpproxy
from tests.support.processes import wait_until
from tests.support.server import Served, request, serve
from tests.web.test_operations import samples, value

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]
HOOK = {"key": "probed", "trigger": {"type": "webhook"}, "start": "done",
        "nodes": {"done": {"type": "END"}}}


def _get(served: Served, path: str) -> tuple[int, bytes]:
    status, _, body = request(served, f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode(),
                              timeout=10)
    return status, body


def _ready(served: Served) -> tuple[int, dict[str, dict[str, object]]]:
    status, body = _get(served, "/readyz")
    return status, json.loads(body)["checks"]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[tuple[Served, tcpproxy.TcpProxy, str]]:
    now = datetime.now(UTC)
    engine = make_engine(db_url)
    with session_scope(make_sessionmaker(engine)) as session:
        workspace, _ = workspace_service.create(session, slug="probes", name=None, now=now)
        workflow_service.save(session, workspace_id=workspace.id, definition=HOOK, now=now)
        token = str(workflow_service.activate(session, workspace_id=workspace.id,
                                              key="probed", actor="test", now=now)
                    .webhook_token)
    engine.dispose()
    parts = urlsplit(db_url)
    proxy = tcpproxy.start(parts.hostname or "127.0.0.1", parts.port or 5432)
    through = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    try:
        with serve(through, tmp_path, log_format="json", lease_seconds="1",
                   heartbeat_seconds="0.3", serve_worker_processes="1") as running:
            yield running, proxy, token
    finally:
        proxy.close()


def test_readiness_follows_real_outages_and_metrics_sum_the_workers(
        served: tuple[Served, tcpproxy.TcpProxy, str]) -> None:
    server, proxy, token = served
    wait_until(lambda: _ready(server)[0] == 200, timeout=20, what="ready")

    body = json.dumps({"n": 1}).encode()
    status, _, _ = request(server, (
        f"POST /hooks/{token} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
    assert status == 202

    def finished() -> float:  # counted by the worker process, read through serve
        text = _get(server, "/metrics")[1].decode()
        return value(samples(text), "relayflow_runs_finished_total", workflow="probed",
                     status="COMPLETED")
    wait_until(lambda: finished() == 1, timeout=20, what="the worker's count in serve's scrape")

    # The worker stopped (not dead: serve would start another): no beat within 2 leases.
    worker, = _children(server.process.pid)
    os.kill(worker, signal.SIGSTOP)
    try:
        wait_until(lambda: _ready(server)[0] == 503, timeout=15, what="not ready")
        status, checks = _ready(server)
        assert checks["workers"]["ok"] is False
        assert checks["database"]["ok"] is True
    finally:
        os.kill(worker, signal.SIGCONT)
    wait_until(lambda: _ready(server)[0] == 200, timeout=15, what="ready again")

    # The database cut: answered within about a second, not after the 10 s connect timeout.
    proxy.cut()
    try:
        started = time.monotonic()
        status, checks = _ready(server)
        took = time.monotonic() - started
        assert status == 503
        assert checks["database"]["ok"] is False
        assert took < 3, took
        scraped = samples(_get(server, "/metrics")[1].decode())
        assert value(scraped, "relayflow_database_up") == 0
    finally:
        proxy.restore()
    wait_until(lambda: _ready(server)[0] == 200, timeout=20, what="ready after the cut")

    lines = [line for line in server.stderr().splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(p) for p in parsed)
    access = [p for p in parsed if p["logger"] == "uvicorn.access" and p["method"] == "POST"]
    assert [p["path"] for p in access] == ["/hooks/…"]
    assert access[0]["status"] == 202
    assert token not in server.stderr()
