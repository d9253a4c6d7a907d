"""Authentication and roles, as every endpoint sees them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import ApiKey
from tests.web.api.definitions import create, straight, trigger

if TYPE_CHECKING:
    from tests.conftest import WorkspaceHandle

WRITES = [
    ("POST", "/api/v1/workflows", straight()),
    ("POST", "/api/v1/workflows/onboarding/activate", None),
    ("POST", "/api/v1/workflows/onboarding/deactivate", None),
    ("POST", "/api/v1/workflows/onboarding/runs", {}),
    ("PUT", "/api/v1/secrets/CRM_TOKEN", {"value": "x"}),
    ("DELETE", "/api/v1/secrets/CRM_TOKEN", None),
]


class TestPrincipal:
    def test_missing_key_is_401(self, anonymous_client: TestClient) -> None:
        response = anonymous_client.get("/api/v1/workflows")

        assert response.status_code == 401
        assert response.json()["error"]["code"] == "Unauthorized"
        assert response.headers["WWW-Authenticate"] == "Bearer"

    def test_wrong_key_is_401(
        self, anonymous_client: TestClient, workspace: WorkspaceHandle
    ) -> None:
        prefix = workspace.api_key.split(".")[0]

        response = anonymous_client.get(
            "/api/v1/runs", headers={"Authorization": f"Bearer {prefix}.wrong-secret"}
        )

        assert response.status_code == 401
        assert response.json()["error"]["code"] == "Unauthorized"

    @pytest.mark.parametrize(
        "header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearer no-dot-in-it", "rf_x.y"]
    )
    def test_malformed_authorization_is_401(
        self, anonymous_client: TestClient, header: str
    ) -> None:
        response = anonymous_client.get("/api/v1/workflows", headers={"Authorization": header})

        assert response.status_code == 401

    def test_revoked_key_is_401(
        self, anonymous_client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        with session_scope(runtime.sessions) as session:
            session.execute(update(ApiKey).where(ApiKey.workspace_id == workspace.id)
                            .values(revoked_at=datetime.now(UTC)))

        response = anonymous_client.get("/api/v1/workflows", headers=workspace.headers)

        assert response.status_code == 401

    def test_missing_key_is_401_before_the_body_is_parsed(
        self, anonymous_client: TestClient
    ) -> None:
        response = anonymous_client.post("/api/v1/workflows", content=b"{broken",
                                         headers={"Content-Type": "application/json"})

        assert response.status_code == 401

    def test_key_only_sees_its_own_workspace(
        self, client: TestClient, other_client: TestClient
    ) -> None:
        create(client, straight("mine"))

        assert other_client.get("/api/v1/workflows").json() == {"items": []}


class TestWriter:
    @pytest.mark.parametrize(("method", "path", "body"), WRITES)
    def test_viewer_is_403_on_writes(
        self, client: TestClient, viewer_client: TestClient, method: str, path: str,
        body: object,
    ) -> None:
        create(client, straight())
        client.put("/api/v1/secrets/CRM_TOKEN", json={"value": "x"})

        response = viewer_client.request(method, path, json=body)

        assert response.status_code == 403
        assert response.json()["error"]["code"] == "Forbidden"

    def test_viewer_is_403_on_cancel_and_the_run_is_untouched(
        self, client: TestClient, viewer_client: TestClient
    ) -> None:
        create(client, straight())
        run_id = trigger(client, "onboarding")

        response = viewer_client.post(f"/api/v1/runs/{run_id}/cancel")

        assert response.status_code == 403
        assert client.get(f"/api/v1/runs/{run_id}").json()["status"] == "PENDING"

    def test_viewer_can_read(self, client: TestClient, viewer_client: TestClient) -> None:
        create(client, straight())
        run_id = trigger(client, "onboarding")

        assert viewer_client.get("/api/v1/workflows").status_code == 200
        assert viewer_client.get("/api/v1/workflows/onboarding").status_code == 200
        assert viewer_client.get("/api/v1/runs").status_code == 200
        assert viewer_client.get(f"/api/v1/runs/{run_id}").status_code == 200


class TestSession:
    def test_failed_commit_is_answered_as_an_error(
        self, app: FastAPI, workspace: WorkspaceHandle, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The commit must happen before the response is sent, or the client would be told
        # the secret was stored when it never was.
        def failing_commit(_session: Session) -> None:
            raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

        monkeypatch.setattr(Session, "commit", failing_commit)

        with TestClient(app, headers=workspace.headers, raise_server_exceptions=False) as client:
            response = client.put("/api/v1/secrets/CRM_TOKEN", json={"value": "x"})

        assert response.status_code == 500
        assert response.json()["error"]["code"] == "InternalError"
