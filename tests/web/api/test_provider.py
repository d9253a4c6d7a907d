"""PUT, GET and DELETE /api/v1/providers/{channel}, and GET /api/v1/providers."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from relayflow.services import provider as provider_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from tests.conftest import WorkspaceHandle

CANARY = "canary-S3cr3t-value-7f3a"
SMTP = {"type": "smtp", "host": "smtp.example.com", "port": 587, "tls": "starttls",
        "username": "ops", "password_secret": "SMTP_PASS", "from": "ops@example.com"}
HTTP = {"type": "http", "url": "https://sms.example.com/messages", "method": "POST",
        "auth_header_secret": "SMS_TOKEN", "body": {"to": "{{ to }}", "text": "{{ body }}"},
        "message_id_path": "body.id"}
SMTP_STORED = {**SMTP, "username": "ops", "timeout": 20.0, "ca_file": None,
               "events_secret": None}
HTTP_STORED = {**HTTP, "auth_header": "Authorization", "auth_scheme": "Bearer", "timeout": 10.0,
               "events_secret": None}


@pytest.fixture
def secrets(client: TestClient) -> None:
    for name in ("SMTP_PASS", "SMS_TOKEN"):
        assert client.put(f"/api/v1/secrets/{name}", json={"value": CANARY}).status_code == 204


def _audit(client: TestClient, action: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = client.get("/api/v1/audit",
                                              params={"action": action}).json()["items"]
    return events


@pytest.mark.usefixtures("secrets")
class TestPutProvider:
    def test_smtp_is_stored_and_returned_with_defaults(self, client: TestClient) -> None:
        response = client.put("/api/v1/providers/email", json=SMTP)

        assert response.status_code == 200, response.text
        assert response.json() == SMTP_STORED
        assert client.get("/api/v1/providers/email").json() == SMTP_STORED

    def test_http_for_sms(self, client: TestClient) -> None:
        response = client.put("/api/v1/providers/sms", json=HTTP)

        assert response.status_code == 200, response.text
        assert response.json() == HTTP_STORED

    def test_put_again_replaces(self, client: TestClient) -> None:
        client.put("/api/v1/providers/email", json=SMTP)

        response = client.put("/api/v1/providers/email", json={**SMTP, "port": 2525})

        assert response.json()["port"] == 2525
        assert client.get("/api/v1/providers/email").json()["port"] == 2525

    def test_audits_provider_set_without_secret_values(self, client: TestClient) -> None:
        client.put("/api/v1/providers/email", json=SMTP)

        [event] = _audit(client, "provider.set")
        assert event["target_id"] == "email"
        assert event["detail"] == {"channel": "email", "type": "smtp"}

    def test_every_problem_is_listed(self, client: TestClient) -> None:
        response = client.put("/api/v1/providers/email", json={
            "type": "smtp", "port": 99999, "tls": "ssl", "from": "nobody", "color": "red"})

        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "InvalidProvider"
        assert error["details"]["problems"] == [
            "unknown field 'color' for smtp", "host is required",
            "port must be a number from 1 to 65535", "tls must be starttls, tls or none",
            "from must be an email address"]
        assert client.get("/api/v1/providers/email").json() == {"type": "outbox"}

    def test_smtp_is_not_an_sms_provider(self, client: TestClient) -> None:
        response = client.put("/api/v1/providers/sms", json=SMTP)

        assert response.status_code == 422
        assert response.json()["error"]["details"]["problems"] == [
            "type must be one of outbox, http for sms"]

    def test_a_secret_value_instead_of_a_name_is_refused(self, client: TestClient) -> None:
        response = client.put("/api/v1/providers/email",
                              json={**SMTP, "password_secret": "hunter2 is my password"})

        assert response.status_code == 422
        assert response.json()["error"]["details"]["problems"] == [
            "password_secret must name a workspace secret (not hold the value itself)",
            "password_secret is required with a username"]

    def test_unknown_secret_is_422_naming_it(self, client: TestClient) -> None:
        response = client.put("/api/v1/providers/sms",
                              json={**HTTP, "auth_header_secret": "NO_SUCH_TOKEN"})

        assert response.status_code == 422
        [problem] = response.json()["error"]["details"]["problems"]
        assert "NO_SUCH_TOKEN" in problem
        assert client.get("/api/v1/providers/sms").json() == {"type": "outbox"}
        assert _audit(client, "provider.set") == []

    def test_unknown_channel_is_404(self, client: TestClient) -> None:
        response = client.put("/api/v1/providers/fax", json={"type": "outbox"})

        assert response.status_code == 404

    def test_body_must_be_an_object(self, client: TestClient) -> None:
        response = client.put("/api/v1/providers/email", json=["smtp"])

        assert response.status_code == 422

    @pytest.mark.parametrize("role", ["operator", "viewer"])
    def test_only_admin_may_set(self, app: Any, client: TestClient, role: str) -> None:
        key = client.post("/api/v1/keys", json={"role": role}).json()["api_key"]
        with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as limited:
            response = limited.put("/api/v1/providers/email", json=SMTP)

        assert response.status_code == 403
        assert client.get("/api/v1/providers/email").json() == {"type": "outbox"}


@pytest.mark.usefixtures("secrets")
class TestGetProvider:
    def test_outbox_when_none_is_set(self, client: TestClient) -> None:
        assert client.get("/api/v1/providers/email").json() == {"type": "outbox"}
        assert client.get("/api/v1/providers/sms").json() == {"type": "outbox"}

    def test_unknown_channel_is_404(self, client: TestClient) -> None:
        assert client.get("/api/v1/providers/fax").status_code == 404

    def test_viewer_may_read(self, client: TestClient, viewer_client: TestClient) -> None:
        client.put("/api/v1/providers/email", json=SMTP)

        assert viewer_client.get("/api/v1/providers/email").json() == SMTP_STORED

    def test_list_shows_both_channels(self, client: TestClient) -> None:
        client.put("/api/v1/providers/sms", json=HTTP)

        assert client.get("/api/v1/providers").json() == {"email": {"type": "outbox"},
                                                          "sms": HTTP_STORED}

    def test_secret_value_is_in_no_response(self, client: TestClient) -> None:
        texts = [client.put("/api/v1/providers/email", json=SMTP).text,
                 client.put("/api/v1/providers/sms", json=HTTP).text,
                 client.get("/api/v1/providers").text,
                 client.get("/api/v1/providers/email").text,
                 client.get("/api/v1/providers/sms").text,
                 client.get("/api/v1/audit").text,
                 client.delete("/api/v1/providers/sms").text]

        assert all(CANARY not in text for text in texts)
        assert "SMTP_PASS" in texts[0]  # the name is shown, so the check above can fail

    def test_another_workspace_sees_its_own(self, client: TestClient,
                                            other_client: TestClient) -> None:
        client.put("/api/v1/providers/email", json=SMTP)

        assert other_client.get("/api/v1/providers/email").json() == {"type": "outbox"}


@pytest.mark.usefixtures("secrets")
class TestDeleteProvider:
    def test_back_to_outbox_and_audited(self, client: TestClient) -> None:
        client.put("/api/v1/providers/email", json=SMTP)

        response = client.delete("/api/v1/providers/email")

        assert response.status_code == 200
        assert response.json() == {"type": "outbox"}
        assert client.get("/api/v1/providers/email").json() == {"type": "outbox"}
        [event] = _audit(client, "provider.delete")
        assert event["detail"] == {"channel": "email", "removed": True}

    def test_when_none_is_set_is_still_outbox(self, client: TestClient) -> None:
        response = client.delete("/api/v1/providers/sms")

        assert response.status_code == 200
        assert response.json() == {"type": "outbox"}

    def test_operator_is_refused(self, app: Any, client: TestClient) -> None:
        client.put("/api/v1/providers/email", json=SMTP)
        key = client.post("/api/v1/keys", json={"role": "operator"}).json()["api_key"]
        with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as operator:
            assert operator.delete("/api/v1/providers/email").status_code == 403

        assert client.get("/api/v1/providers/email").json() == SMTP_STORED


@pytest.mark.usefixtures("secrets")
class TestConfigFor:
    def test_none_when_unset_then_the_stored_config(
        self, client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        with session_scope(runtime.sessions) as session:
            assert provider_service.config_for(session, workspace_id=workspace.id,
                                               channel="email") is None
        client.put("/api/v1/providers/email", json=SMTP)

        with session_scope(runtime.sessions) as session:
            assert provider_service.config_for(session, workspace_id=workspace.id,
                                               channel="email") == SMTP_STORED
