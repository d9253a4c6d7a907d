from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi.testclient import TestClient
from sqlalchemy import select

from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import AuditEvent

if TYPE_CHECKING:
    from tests.conftest import WorkspaceHandle

VALUE = "sk_live_do-not-leak-7f3a9c"


def _audit_actions(runtime: Runtime, workspace: WorkspaceHandle) -> list[tuple[str, str]]:
    with session_scope(runtime.sessions) as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.workspace_id == workspace.id,
                                     AuditEvent.target_type == "secret")
            .order_by(AuditEvent.at)
        )
        return [(e.action, e.target_id) for e in events]


class TestPutSecret:
    def test_stores_it_and_answers_204(self, client: TestClient) -> None:
        response = client.put("/api/v1/secrets/CRM_TOKEN", json={"value": VALUE})

        assert response.status_code == 204
        assert response.content == b""
        names = [s["name"] for s in client.get("/api/v1/secrets").json()["items"]]
        assert names == ["CRM_TOKEN"]

    def test_putting_again_replaces_the_value(self, client: TestClient) -> None:
        client.put("/api/v1/secrets/CRM_TOKEN", json={"value": "first"})
        before = client.get("/api/v1/secrets").json()["items"][0]["updated_at"]

        response = client.put("/api/v1/secrets/CRM_TOKEN", json={"value": "second"})

        assert response.status_code == 204
        items = client.get("/api/v1/secrets").json()["items"]
        assert len(items) == 1
        assert items[0]["updated_at"] >= before

    def test_records_an_audit_event(
        self, client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        client.put("/api/v1/secrets/CRM_TOKEN", json={"value": VALUE})

        assert _audit_actions(runtime, workspace) == [("secret.set", "CRM_TOKEN")]

    def test_invalid_name_is_422(self, client: TestClient) -> None:
        response = client.put("/api/v1/secrets/not-a-name", json={"value": VALUE})

        assert response.status_code == 422
        assert response.json()["error"]["code"] == "InvalidInput"
        assert VALUE not in response.text

    def test_empty_value_is_422(self, client: TestClient) -> None:
        response = client.put("/api/v1/secrets/CRM_TOKEN", json={"value": ""})

        assert response.status_code == 422
        assert response.json()["error"]["details"]["fields"][0]["loc"] == ["body", "value"]

    def test_value_of_the_wrong_type_is_not_echoed(self, client: TestClient) -> None:
        response = client.put("/api/v1/secrets/CRM_TOKEN", json={"value": [VALUE]})

        assert response.status_code == 422
        assert VALUE not in response.text


class TestListSecrets:
    def test_shows_names_and_never_values(self, client: TestClient) -> None:
        client.put("/api/v1/secrets/CRM_TOKEN", json={"value": VALUE})
        client.put("/api/v1/secrets/SMTP_PASS", json={"value": VALUE + "-smtp"})

        response = client.get("/api/v1/secrets")

        assert response.status_code == 200
        items = response.json()["items"]
        assert [s["name"] for s in items] == ["CRM_TOKEN", "SMTP_PASS"]
        assert all(set(s) == {"name", "updated_at"} for s in items)
        assert VALUE not in response.text

    def test_another_workspace_secrets_are_not_listed(
        self, client: TestClient, other_client: TestClient
    ) -> None:
        other_client.put("/api/v1/secrets/THEIRS", json={"value": VALUE})

        assert client.get("/api/v1/secrets").json() == {"items": []}

    def test_viewer_can_list(self, client: TestClient, viewer_client: TestClient) -> None:
        client.put("/api/v1/secrets/CRM_TOKEN", json={"value": VALUE})

        response = viewer_client.get("/api/v1/secrets")

        assert response.status_code == 200
        assert VALUE not in response.text


class TestDeleteSecret:
    def test_removes_it(self, client: TestClient) -> None:
        client.put("/api/v1/secrets/CRM_TOKEN", json={"value": VALUE})

        response = client.delete("/api/v1/secrets/CRM_TOKEN")

        assert response.status_code == 204
        assert client.get("/api/v1/secrets").json() == {"items": []}

    def test_unknown_name_is_404(self, client: TestClient) -> None:
        response = client.delete("/api/v1/secrets/NOPE")

        assert response.status_code == 404
        assert response.json()["error"]["code"] == "NotFound"

    def test_another_workspace_secret_is_404_and_kept(
        self, client: TestClient, other_client: TestClient
    ) -> None:
        other_client.put("/api/v1/secrets/THEIRS", json={"value": VALUE})

        assert client.delete("/api/v1/secrets/THEIRS").status_code == 404
        assert [s["name"] for s in other_client.get("/api/v1/secrets").json()["items"]] == [
            "THEIRS"
        ]

    def test_records_an_audit_event(
        self, client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        client.put("/api/v1/secrets/CRM_TOKEN", json={"value": VALUE})

        client.delete("/api/v1/secrets/CRM_TOKEN")

        assert _audit_actions(runtime, workspace) == [
            ("secret.set", "CRM_TOKEN"), ("secret.delete", "CRM_TOKEN"),
        ]
