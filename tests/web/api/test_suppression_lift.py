"""POST /api/v1/contacts/{id}/suppression/lift: an admin lets messages reach a contact on a
channel again; audited with what the suppression was and why; on the contact's page, the
suppression says since when and from what, and the lift shows on the timeline."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from relayflow.services.runtime import Runtime
from tests.support.flows import suppress
from tests.support.worker import drain
from tests.web.api.definitions import create, straight, trigger


def _ada(client: TestClient, runtime: Runtime) -> str:
    create(client, straight())
    run_id = trigger(client, "onboarding")
    drain(runtime)
    return client.get(f"/api/v1/runs/{run_id}").json()["contact"]["id"]


def _lift(client: TestClient, contact_id: str, **body: str):  # type: ignore[no-untyped-def]
    return client.post(f"/api/v1/contacts/{contact_id}/suppression/lift",
                       json={"channel": "email", "reason": "she asked by phone", **body})


class TestLift:
    def test_lifting_lets_the_next_message_go_and_is_audited(self, client, runtime) -> None:
        contact_id = _ada(client, runtime)
        suppress(runtime, "ada@example.com", "email", "unsubscribed")
        response = _lift(client, contact_id)
        assert response.status_code == 200, response.text
        assert response.json()["suppressed"] == {}
        trigger(client, "onboarding")
        drain(runtime)
        statuses = [d["status"] for d in client.get(
            "/api/v1/deliveries", params={"contact": "ada@example.com"}).json()["items"]]
        assert statuses == ["SENT", "SENT"]
        [event] = client.get("/api/v1/audit",
                             params={"action": "contact.suppression_lift"}).json()["items"]
        assert event["target_id"] == contact_id
        assert event["detail"] == {"channel": "email", "was": "unsubscribed",
                                   "reason": "she asked by phone"}

    def test_a_channel_not_suppressed_is_409(self, client, runtime) -> None:
        contact_id = _ada(client, runtime)
        response = _lift(client, contact_id)
        assert response.status_code == 409, response.text
        assert "not suppressed" in response.json()["error"]["message"]

    @pytest.mark.parametrize("body", [{"channel": "fax"}, {"reason": ""},
                                      {"reason": "x" * 501}])
    def test_bad_input_is_422_and_changes_nothing(self, client, runtime, body) -> None:
        contact_id = _ada(client, runtime)
        suppress(runtime, "ada@example.com", "email", "unsubscribed")
        assert _lift(client, contact_id, **body).status_code == 422
        contact = client.get(f"/api/v1/contacts/{contact_id}").json()
        assert contact["suppressed"] == {"email": "unsubscribed"}
