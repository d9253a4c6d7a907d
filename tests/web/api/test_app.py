from __future__ import annotations

import time
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.testclient import TestClient

from relayflow.config import Settings
from relayflow.services.runtime import Runtime
from relayflow.web.app import create_app
from relayflow.worker.loop import Worker
from tests.web.api.definitions import create, straight, trigger

if TYPE_CHECKING:
    from tests.conftest import WorkspaceHandle


class TestCreateApp:
    def test_health_check(self, anonymous_client: TestClient) -> None:
        response = anonymous_client.get("/healthz")

        assert response.status_code == 200
        assert response.json() == {"ok": True}

    def test_openapi_and_docs_are_served_under_api(self, anonymous_client: TestClient) -> None:
        spec = anonymous_client.get("/api/openapi.json")
        docs = anonymous_client.get("/api/docs")

        assert spec.status_code == 200
        assert "/api/v1/runs/{run_id}" in spec.json()["paths"]
        assert docs.status_code == 200
        assert "/api/openapi.json" in docs.text

    def test_runtime_and_no_worker_by_default(self, app: FastAPI, runtime: Runtime) -> None:
        assert app.state.runtime is runtime
        assert app.state.worker is None

    def test_runtime_is_built_from_settings_when_not_given(
        self, settings: Settings, workspace: WorkspaceHandle
    ) -> None:
        app = create_app(settings)

        with TestClient(app, headers=workspace.headers) as client:
            response = client.get("/api/v1/workflows")

        assert response.status_code == 200
        assert app.state.runtime.base_url == f"http://{settings.host}:{settings.port}"

    def test_embedded_worker_runs_triggered_runs(
        self, settings: Settings, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        app = create_app(settings, runtime=runtime,
                         worker=lambda rt: Worker(rt, settings))

        with TestClient(app, headers=workspace.headers) as client:
            assert app.state.worker is not None
            create(client, straight())
            run_id = trigger(client, "onboarding")
            deadline = time.monotonic() + 10
            status = "PENDING"
            while status != "COMPLETED" and time.monotonic() < deadline:
                time.sleep(0.05)
                status = client.get(f"/api/v1/runs/{run_id}").json()["status"]

        assert status == "COMPLETED"
        assert app.state.worker.stop_event.is_set()


class TestErrors:
    def test_unknown_route_is_404_in_the_error_shape(self, anonymous_client: TestClient) -> None:
        response = anonymous_client.get("/api/v1/nothing-here")

        assert response.status_code == 404
        assert response.json() == {"error": {
            "code": "NotFound", "message": "No route for GET /api/v1/nothing-here",
            "details": {},
        }}

    def test_wrong_method_is_405_in_the_error_shape(self, client: TestClient) -> None:
        response = client.delete("/api/v1/runs")

        assert response.status_code == 405
        assert response.json()["error"]["code"] == "MethodNotAllowed"

    def test_unexpected_exception_is_500_without_internals(
        self, app: FastAPI, workspace: WorkspaceHandle
    ) -> None:
        def explode() -> None:
            raise RuntimeError("password=hunter2 at /srv/relayflow/secret.py")

        app.add_api_route("/api/v1/explode", explode)

        with TestClient(app, raise_server_exceptions=False) as client:
            response = client.get("/api/v1/explode")

        assert response.status_code == 500
        assert response.json()["error"]["code"] == "InternalError"
        assert "hunter2" not in response.text
        assert "secret.py" not in response.text
