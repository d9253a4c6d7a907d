"""RELAYFLOW_READ_DATABASE_URL against a real streaming replica: a private primary and a
standby made from it with pg_basebackup (tests/support/pgcluster.py). The history lists,
counts, pages and CSV export read the replica; a run's detail and every action use the
primary. When the replica lags the pages say so, and when it is down the primary answers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from relayflow.config import Settings
from relayflow.services.runtime import Runtime
from relayflow.storage.migrate import upgrade
from tests.conftest import TEST_SECRET_KEY, WorkspaceHandle, make_workspace
from tests.support import pgcluster
from tests.support.flows import install, start
from tests.support.pages import add_member, sign_in
from tests.support.worker import drain
from tests.web.api.definitions import create, trigger

pytestmark = pytest.mark.postgres_only

FLOW = {"key": "replicated", "trigger": {"type": "manual"}, "start": "done",
        "nodes": {"done": {"type": "END"}}}
MAIL = {"key": "replicated-mail", "trigger": {"type": "manual"}, "start": "mail", "nodes": {
    "mail": {"type": "SEND_MESSAGE", "channel": "email", "subject": "Hi", "body": "Hello",
             "next": "done"},
    "done": {"type": "END"}}}


@dataclass
class Pair:
    primary: pgcluster.Cluster
    replica: pgcluster.Cluster


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    primary = pgcluster.create()
    if primary is None:
        pytest.skip("PostgreSQL's server programs are not installed")
    replica = None
    try:
        upgrade(primary.url())
        replica = pgcluster.replica_of(primary)
        yield Pair(primary, replica)
    finally:
        for cluster in (replica, primary):
            if cluster is not None:
                cluster.remove()


def _sql(url: str, statement: str) -> object:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.begin() as conn:
            return conn.scalar(text(statement))
    finally:
        engine.dispose()


def _caught_up(pair: Pair, timeout: float = 20) -> None:
    """Wait until the replica has replayed everything the primary has written."""
    deadline = time.monotonic() + timeout
    target = _sql(pair.primary.url(), "SELECT pg_current_wal_lsn()::text")
    while time.monotonic() < deadline:
        if _sql(pair.replica.url(), "SELECT pg_last_wal_replay_lsn() >= "
                                    f"'{target}'::pg_lsn"):
            return
        time.sleep(0.05)
    raise AssertionError("the replica did not catch up")


@dataclass
class Replicated:
    settings: Settings
    runtime: Runtime  # its sessions write to the primary
    workspace: WorkspaceHandle
    email: str  # a member's


@pytest.fixture
def replicated(pair: Pair, tmp_path: Path) -> Iterator[Replicated]:
    settings = Settings(database_url=pair.primary.url(), read_database_url=pair.replica.url(),
                        secret_key=TEST_SECRET_KEY,  # type: ignore[arg-type]
                        secret_key_file=str(tmp_path / "secret.key"))
    runtime = Runtime.from_settings(settings)
    try:
        workspace = make_workspace(runtime, f"replica-{time.monotonic_ns()}")
        email = f"ops-{time.monotonic_ns()}@example.com"
        add_member(runtime, workspace.id, email)
        yield Replicated(settings, runtime, workspace, email)
    finally:
        runtime.dispose()


@pytest.fixture
def app_clients(replicated: Replicated) -> Iterator[tuple[TestClient, TestClient]]:
    from relayflow.web.app import create_app

    app = create_app(replicated.settings, runtime=replicated.runtime)
    with (TestClient(app, headers=replicated.workspace.headers) as api,
          TestClient(app) as page):
        sign_in(page, replicated.email)
        yield api, page


def _listed(api: TestClient) -> tuple[set[str], str]:
    response = api.get("/api/v1/runs", params={"workflow": FLOW["key"]})
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["items"]}, response.headers["Replica-Lag"]


def test_history_reads_the_replica_and_says_how_far_behind_it_is(
        pair: Pair, app_clients: tuple[TestClient, TestClient]) -> None:
    api, page = app_clients
    create(api, FLOW)
    first = trigger(api, FLOW["key"])
    _caught_up(pair)
    listed, lag = _listed(api)
    assert listed == {first}
    assert float(lag) < 5
    assert "data-replica-behind" not in page.get("/runs").text

    _sql(pair.replica.url(), "SELECT pg_wal_replay_pause()")
    try:
        second = trigger(api, FLOW["key"])
        # Written on the primary, which answers for the run itself at once ...
        assert api.get(f"/api/v1/runs/{second}").status_code == 200
        # ... while the history, read from the paused replica, does not have it yet.
        listed, lag = _listed(api)
        assert listed == {first}
        time.sleep(5.5)  # past the pages' notice threshold (templating.REPLICA_NOTICE_SECONDS)
        listed, lag = _listed(api)
        assert listed == {first}
        assert float(lag) > 5
        runs_page = page.get("/runs")
        assert runs_page.status_code == 200
        assert "data-replica-behind" in runs_page.text
        assert second not in runs_page.text
        assert "data-replica-behind" in page.get("/delivery-ops").text
        exported = page.get("/runs.csv")
        assert first in exported.text
        assert second not in exported.text
    finally:
        _sql(pair.replica.url(), "SELECT pg_wal_replay_resume()")
    _caught_up(pair)
    listed, lag = _listed(api)
    assert listed == {first, second}
    assert float(lag) < 5
    assert "data-replica-behind" not in page.get("/runs").text


def test_the_delivery_export_reads_the_replica(
        pair: Pair, replicated: Replicated, app_clients: tuple[TestClient, TestClient]) -> None:
    _, page = app_clients
    runtime, workspace = replicated.runtime, replicated.workspace
    install(runtime, workspace.id, MAIL)
    start(runtime, workspace.id, MAIL["key"], email="first@example.com")
    drain(runtime)
    _caught_up(pair)
    _sql(pair.replica.url(), "SELECT pg_wal_replay_pause()")
    try:
        start(runtime, workspace.id, MAIL["key"], email="second@example.com")
        drain(runtime)  # sent, on the primary only
        exported = page.get("/delivery-ops.csv?range=all")
        assert exported.status_code == 200
        assert exported.text.count("\r\n") == 2
        assert ",first@example.com,email," in exported.text
        assert "second@example.com" not in exported.text
    finally:
        _sql(pair.replica.url(), "SELECT pg_wal_replay_resume()")


def test_a_replica_that_is_down_leaves_the_primary_to_answer(
        pair: Pair, app_clients: tuple[TestClient, TestClient]) -> None:
    api, page = app_clients
    create(api, FLOW)
    run = trigger(api, FLOW["key"])
    pair.replica.stop()
    try:
        listed, lag = _listed(api)
        assert listed == {run}
        assert lag == "unavailable"
        assert run in page.get("/runs").text
    finally:
        pair.replica.start()
