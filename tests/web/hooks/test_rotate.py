"""POST /api/v1/workflows/{key}/webhook/rotate."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from relayflow.config import Settings
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import AuditEvent
from relayflow.web.app import create_app
from tests.web.api.definitions import create, straight
from tests.web.hooks.conftest import hook_definition, install_hook

ROTATE = "/api/v1/workflows/inbound/webhook/rotate"
EVENT = {"kind": "order"}


class TestRotateWebhook:
    def test_answers_a_new_webhook_url(self, client: TestClient) -> None:
        old_path = install_hook(client, hook_definition())

        response = client.post(ROTATE)

        assert response.status_code == 200
        url = response.json()["webhook_url"]
        assert "/hooks/" in url
        assert not url.endswith(old_path)
        assert client.get("/api/v1/workflows/inbound").json()["webhook_url"] == url

    def test_the_new_url_works_and_the_old_one_is_404(self, client: TestClient) -> None:
        old_path = install_hook(client, hook_definition())

        url = client.post(ROTATE).json()["webhook_url"]
        new_path = "/hooks/" + url.rsplit("/hooks/", 1)[1]

        assert client.post(new_path, json=EVENT).status_code == 202
        assert client.post(old_path, json=EVENT).status_code == 404

    def test_records_an_audit_event_without_the_token(
        self, client: TestClient, runtime: Runtime, workspace
    ) -> None:
        install_hook(client, hook_definition())

        url = client.post(ROTATE).json()["webhook_url"]

        with session_scope(runtime.sessions) as session:
            events = list(session.scalars(select(AuditEvent).where(
                AuditEvent.action == "workflow.webhook_rotate")))
        assert len(events) == 1
        event = events[0]
        assert event.workspace_id == workspace.id
        assert (event.target_type, event.target_id) == ("workflow", "inbound")
        assert event.actor.startswith("key:rf_")
        token = url.rsplit("/", 1)[1]
        assert token not in str(event.detail)

    def test_viewer_key_is_403(
        self, client: TestClient, viewer_client: TestClient
    ) -> None:
        path = install_hook(client, hook_definition())

        response = viewer_client.post(ROTATE)

        assert response.status_code == 403
        assert client.post(path, json=EVENT).status_code == 202  # unchanged

    def test_without_an_api_key_is_401(
        self, client: TestClient, anonymous_client: TestClient
    ) -> None:
        install_hook(client, hook_definition())

        assert anonymous_client.post(ROTATE).status_code == 401

    def test_workflow_without_a_webhook_trigger_is_409(self, client: TestClient) -> None:
        create(client, straight())

        response = client.post("/api/v1/workflows/onboarding/webhook/rotate")

        assert response.status_code == 409
        assert response.json()["error"]["code"] == "Conflict"

    def test_unknown_workflow_is_404(self, client: TestClient) -> None:
        assert client.post(ROTATE).status_code == 404

    def test_another_workspace_workflow_is_404(
        self, client: TestClient, other_client: TestClient
    ) -> None:
        path = install_hook(other_client, hook_definition())

        assert client.post(ROTATE).status_code == 404
        assert client.post(path, json=EVENT).status_code == 202  # theirs still works

    def test_url_uses_the_public_url_when_set(
        self, settings: Settings, workspace
    ) -> None:
        public = settings.model_copy(update={"public_url": "https://relay.example.com/"})
        with TestClient(create_app(public), headers=workspace.headers) as client:
            install_hook(client, hook_definition())

            url = client.post(ROTATE).json()["webhook_url"]

        assert url.startswith("https://relay.example.com/hooks/")
