from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from relayflow.config import Settings
from relayflow.services import auth as auth_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.web.app import create_app
from tests.support.pages import add_member, sign_in

if TYPE_CHECKING:
    from tests.conftest import WorkspaceHandle


@pytest.fixture
def app(settings: Settings, runtime: Runtime) -> FastAPI:
    return create_app(settings, runtime=runtime)


@pytest.fixture
def client(app: FastAPI, workspace: WorkspaceHandle) -> Iterator[TestClient]:
    """Authenticated with the admin key of `workspace`."""
    with TestClient(app, headers=workspace.headers) as test_client:
        yield test_client


@pytest.fixture
def anonymous_client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def other_client(app: FastAPI, other_workspace: WorkspaceHandle) -> Iterator[TestClient]:
    """Authenticated with the admin key of `other_workspace`."""
    with TestClient(app, headers=other_workspace.headers) as test_client:
        yield test_client


@pytest.fixture
def viewer_key(runtime: Runtime, workspace: WorkspaceHandle) -> str:
    with session_scope(runtime.sessions) as session:
        _, key = auth_service.create_api_key(
            session, workspace_id=workspace.id, role="viewer", created_by="test",
            now=datetime.now(UTC),
        )
    return key


@pytest.fixture
def viewer_client(app: FastAPI, viewer_key: str) -> Iterator[TestClient]:
    with TestClient(app, headers={"Authorization": f"Bearer {viewer_key}"}) as test_client:
        yield test_client


@pytest.fixture
def live_url(app: FastAPI) -> Iterator[str]:
    """The app served by uvicorn on a free loopback port, so requests really run in parallel."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    sock.close()


ADMIN = "ada@acme.test"
OPERATOR = "olga@acme.test"
VIEWER = "vic@acme.test"
OUTSIDER = "otto@globex.test"


@pytest.fixture
def members(runtime: Runtime, workspace: WorkspaceHandle) -> dict[str, str]:
    add_member(runtime, workspace.id, ADMIN, "admin")
    add_member(runtime, workspace.id, OPERATOR, "operator")
    add_member(runtime, workspace.id, VIEWER, "viewer")
    return {"admin": ADMIN, "operator": OPERATOR, "viewer": VIEWER}


@pytest.fixture
def page_client(app: FastAPI, members: dict[str, str]) -> Iterator[TestClient]:
    """Signed in as an admin of `workspace` (no API key header)."""
    with TestClient(app) as client:
        sign_in(client, members["admin"])
        yield client


@pytest.fixture
def operator_page_client(app: FastAPI, members: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(app) as client:
        sign_in(client, members["operator"])
        yield client


@pytest.fixture
def viewer_page_client(app: FastAPI, members: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(app) as client:
        sign_in(client, members["viewer"])
        yield client


@pytest.fixture
def outsider_page_client(
    app: FastAPI, runtime: Runtime, other_workspace: WorkspaceHandle
) -> Iterator[TestClient]:
    """Signed in as an admin of `other_workspace` only."""
    add_member(runtime, other_workspace.id, OUTSIDER, "admin")
    with TestClient(app) as client:
        sign_in(client, OUTSIDER)
        yield client
