"""POST /api/v1/deliveries/{id}/resend."""

from __future__ import annotations

from relayflow.services import resend as resend_service
from tests.support.flows import suppress
from tests.support.worker import drain
from tests.web.api.definitions import create, straight, trigger


def _delivered(client, runtime) -> str:
    create(client, straight())
    trigger(client, "onboarding")
    drain(runtime)
    return client.get("/api/v1/deliveries").json()["items"][0]["id"]


class TestResend:
    def test_queues_a_run_less_attempt_the_worker_sends_once(self, client, runtime):
        original = _delivered(client, runtime)
        response = client.post(f"/api/v1/deliveries/{original}/resend",
                               json={"reason": "customer lost it"})
        assert response.status_code == 202, response.text
        copy = response.json()
        assert (copy["status"], copy["resend_of"]) == ("QUEUED", original)
        assert resend_service.send_queued(runtime) == 1
        detail = client.get(f"/api/v1/deliveries/{copy['id']}").json()
        assert (detail["status"], detail["run_id"], detail["resend_of"]) == ("SENT", None,
                                                                          original)
        assert {c["id"] for c in detail["chain"]} >= {original, copy["id"]}
        audit = client.get("/api/v1/audit", params={"action": "delivery.resend"}).json()
        assert audit["items"][0]["target_id"] == copy["id"]

    def test_a_suppressed_contact_needs_override(self, client, runtime):
        original = _delivered(client, runtime)
        suppress(runtime, "ada@example.com", "email", "bounced")
        refused = client.post(f"/api/v1/deliveries/{original}/resend",
                              json={"reason": "try again"})
        assert refused.status_code == 409
        assert "override" in refused.json()["error"]["message"]
        allowed = client.post(f"/api/v1/deliveries/{original}/resend",
                              json={"reason": "they asked", "override": True})
        assert allowed.status_code == 202

    def test_a_reason_is_required(self, client, runtime):
        original = _delivered(client, runtime)
        response = client.post(f"/api/v1/deliveries/{original}/resend", json={})
        assert response.status_code == 422
