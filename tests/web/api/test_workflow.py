from __future__ import annotations

import yaml
from fastapi.testclient import TestClient

from relayflow.services.runtime import Runtime
from tests.support.worker import drain
from tests.web.api.definitions import create, straight, trigger, waiting, webhook


class TestSaveWorkflow:
    def test_new_definition_is_created(self, client: TestClient) -> None:
        response = client.post("/api/v1/workflows", json=straight())

        assert response.status_code == 201
        body = response.json()
        assert body["key"] == "onboarding"
        assert body["name"] == "Onboarding"
        assert body["status"] == "DRAFT"
        assert body["trigger"] == {"type": "manual"}
        assert body["version"] == 1
        assert body["new_version"] is True
        assert body["webhook_url"] is None
        assert body["created_at"].endswith("Z") or "+00:00" in body["created_at"]

    def test_same_definition_again_keeps_the_version(self, client: TestClient) -> None:
        client.post("/api/v1/workflows", json=straight())

        response = client.post("/api/v1/workflows", json=straight())

        assert response.status_code == 200
        assert response.json()["new_version"] is False
        assert response.json()["version"] == 1
        detail = client.get("/api/v1/workflows/onboarding").json()
        assert [v["number"] for v in detail["versions"]] == [1]

    def test_changed_definition_becomes_a_new_version(self, client: TestClient) -> None:
        client.post("/api/v1/workflows", json=straight())

        response = client.post("/api/v1/workflows", json=straight(body="Changed"))

        assert response.status_code == 200
        assert response.json()["new_version"] is True
        assert response.json()["version"] == 2
        detail = client.get("/api/v1/workflows/onboarding").json()
        assert [v["number"] for v in detail["versions"]] == [2, 1]
        assert detail["definition"]["nodes"]["welcome"]["body"] == "Changed"

    def test_invalid_definition_lists_every_problem(self, client: TestClient) -> None:
        definition = straight()
        definition["nodes"]["check"]["then"] = "nowhere"  # edge to a missing node
        definition["nodes"]["welcome"]["body"] = "Hi {{ contact.email"  # template syntax
        definition["nodes"]["mystery"] = {"type": "TELEPORT", "next": "done"}

        response = client.post("/api/v1/workflows", json=definition)

        assert response.status_code == 422
        body = response.json()
        assert body["error"]["code"] == "InvalidGraph"
        assert body["error"]["message"]
        flagged = {p["node"] for p in body["error"]["details"]["problems"]}
        assert {"check", "welcome", "mystery"} <= flagged
        assert all(p["message"] for p in body["error"]["details"]["problems"])

    def test_invalid_definition_is_not_saved(self, client: TestClient) -> None:
        definition = straight()
        definition["start"] = "missing"

        client.post("/api/v1/workflows", json=definition)

        assert client.get("/api/v1/workflows/onboarding").status_code == 404

    def test_yaml_body_is_accepted(self, client: TestClient) -> None:
        response = client.post(
            "/api/v1/workflows", content=yaml.safe_dump(straight()),
            headers={"Content-Type": "application/yaml"},
        )

        assert response.status_code == 201
        assert response.json()["key"] == "onboarding"

    def test_malformed_json_is_400(self, client: TestClient) -> None:
        response = client.post(
            "/api/v1/workflows", content=b'{"key": "onboarding",',
            headers={"Content-Type": "application/json"},
        )

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "MalformedInput"

    def test_a_body_that_is_not_a_mapping_is_400(self, client: TestClient) -> None:
        response = client.post("/api/v1/workflows", json=["not", "a", "definition"])

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "MalformedInput"

    def test_webhook_workflow_gets_a_webhook_url(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        response = client.post("/api/v1/workflows", json=webhook())

        url = response.json()["webhook_url"]
        assert url.startswith(f"{runtime.base_url}/hooks/")
        assert len(url) > len(f"{runtime.base_url}/hooks/")

    def test_same_key_in_another_workspace_is_a_separate_workflow(
        self, client: TestClient, other_client: TestClient
    ) -> None:
        client.post("/api/v1/workflows", json=straight())

        response = other_client.post("/api/v1/workflows", json=straight(body="Other"))

        assert response.status_code == 201
        mine = client.get("/api/v1/workflows/onboarding").json()
        assert mine["definition"]["nodes"]["welcome"]["body"] != "Other"


class TestListWorkflows:
    def test_lists_the_workspace_workflows_by_key(
        self, client: TestClient, other_client: TestClient
    ) -> None:
        create(client, waiting("zeta"), activate=False)
        create(client, straight("alpha"))
        create(other_client, straight("theirs"))

        response = client.get("/api/v1/workflows")

        assert response.status_code == 200
        items = response.json()["items"]
        assert [w["key"] for w in items] == ["alpha", "zeta"]
        assert [w["status"] for w in items] == ["ACTIVE", "DRAFT"]
        assert all(w["version"] == 1 for w in items)

    def test_empty_workspace_lists_nothing(self, client: TestClient) -> None:
        assert client.get("/api/v1/workflows").json() == {"items": []}


class TestGetWorkflow:
    def test_returns_versions_and_current_definition(self, client: TestClient) -> None:
        create(client, straight(), activate=False)
        create(client, straight(body="Second"), activate=False)

        response = client.get("/api/v1/workflows/onboarding")

        assert response.status_code == 200
        body = response.json()
        assert body["version"] == 2
        assert [v["number"] for v in body["versions"]] == [2, 1]
        assert all(v["created_at"] for v in body["versions"])
        assert body["definition"] == straight(body="Second")

    def test_unknown_key_is_404(self, client: TestClient) -> None:
        response = client.get("/api/v1/workflows/nope")

        assert response.status_code == 404
        assert response.json()["error"]["code"] == "NotFound"

    def test_another_workspace_key_is_404_like_a_missing_one(
        self, client: TestClient, other_client: TestClient
    ) -> None:
        create(other_client, straight("theirs"))

        theirs = client.get("/api/v1/workflows/theirs")
        missing = client.get("/api/v1/workflows/missing")

        assert theirs.status_code == missing.status_code == 404
        assert theirs.json()["error"]["code"] == missing.json()["error"]["code"] == "NotFound"


class TestActivateWorkflow:
    def test_draft_becomes_active(self, client: TestClient) -> None:
        create(client, straight(), activate=False)

        response = client.post("/api/v1/workflows/onboarding/activate")

        assert response.status_code == 200
        assert response.json()["status"] == "ACTIVE"
        assert client.get("/api/v1/workflows/onboarding").json()["status"] == "ACTIVE"

    def test_unknown_key_is_404(self, client: TestClient) -> None:
        assert client.post("/api/v1/workflows/nope/activate").status_code == 404

    def test_definition_invalid_since_save_is_422(self, client: TestClient) -> None:
        client.put("/api/v1/secrets/CRM_TOKEN", json={"value": "s3cret"})
        definition = {
            "key": "crm", "start": "call",
            "nodes": {
                "call": {"type": "INTEGRATION", "next": "done", "request": {
                    "method": "GET", "url": "https://crm.example.com/",
                    "headers": {"Authorization": "Bearer {{ secrets.CRM_TOKEN }}"}}},
                "done": {"type": "END"},
            },
        }
        create(client, definition, activate=False)
        client.delete("/api/v1/secrets/CRM_TOKEN")

        response = client.post("/api/v1/workflows/crm/activate")

        assert response.status_code == 422
        assert response.json()["error"]["code"] == "InvalidGraph"
        assert [p["node"] for p in response.json()["error"]["details"]["problems"]] == ["call"]


class TestDeactivateWorkflow:
    def test_cancels_in_flight_runs_and_reports_the_count(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        create(client, waiting("drip"))
        parked = [trigger(client, "drip"), trigger(client, "drip")]
        drain(runtime)
        pending = trigger(client, "drip")
        create(client, straight("other"))
        untouched = trigger(client, "other")

        response = client.post("/api/v1/workflows/drip/deactivate")

        assert response.status_code == 200
        assert response.json()["status"] == "INACTIVE"
        assert response.json()["canceled_runs"] == 3
        for run_id in [*parked, pending]:
            assert client.get(f"/api/v1/runs/{run_id}").json()["status"] == "CANCELED"
        assert client.get(f"/api/v1/runs/{untouched}").json()["status"] == "PENDING"

    def test_finished_runs_are_not_counted(self, client: TestClient, runtime: Runtime) -> None:
        create(client, straight())
        done = trigger(client, "onboarding")
        drain(runtime)

        response = client.post("/api/v1/workflows/onboarding/deactivate")

        assert response.json()["canceled_runs"] == 0
        assert client.get(f"/api/v1/runs/{done}").json()["status"] == "COMPLETED"

    def test_inactive_workflow_refuses_new_runs(self, client: TestClient) -> None:
        create(client, straight())
        client.post("/api/v1/workflows/onboarding/deactivate")

        response = client.post("/api/v1/workflows/onboarding/runs", json={})

        assert response.status_code == 409

    def test_unknown_key_is_404(self, client: TestClient) -> None:
        assert client.post("/api/v1/workflows/nope/deactivate").status_code == 404


class TestTriggerRun:
    def test_enqueues_a_pending_run(self, client: TestClient) -> None:
        create(client, straight())

        response = client.post(
            "/api/v1/workflows/onboarding/runs",
            json={"contact": {"email": "Ada@Example.com"}, "event": {"plan": "pro"}},
        )

        assert response.status_code == 202
        body = response.json()
        assert body["status"] == "PENDING"
        assert body["duplicate"] is False
        run = client.get(f"/api/v1/runs/{body['id']}").json()
        assert run["trigger"] == "manual"
        assert run["contact"]["email"] == "ada@example.com"
        assert run["event"] == {"plan": "pro"}

    def test_without_contact_the_run_has_none(self, client: TestClient) -> None:
        create(client, straight())

        response = client.post("/api/v1/workflows/onboarding/runs", json={"event": {}})

        assert response.status_code == 202
        assert client.get(f"/api/v1/runs/{response.json()['id']}").json()["contact"] is None

    def test_same_idempotency_key_returns_the_first_run(self, client: TestClient) -> None:
        create(client, straight())
        first = client.post("/api/v1/workflows/onboarding/runs",
                            json={"idempotency_key": "order-1"}).json()

        second = client.post("/api/v1/workflows/onboarding/runs",
                             json={"idempotency_key": "order-1"})

        assert second.status_code == 202
        assert second.json()["id"] == first["id"]
        assert second.json()["duplicate"] is True
        assert client.get(f"/api/v1/runs/{first['id']}").json()["duplicates_ignored"] == 1

    def test_unknown_workflow_is_404(self, client: TestClient) -> None:
        response = client.post("/api/v1/workflows/nope/runs", json={})

        assert response.status_code == 404
        assert response.json()["error"]["code"] == "NotFound"

    def test_another_workspace_workflow_is_404(
        self, client: TestClient, other_client: TestClient
    ) -> None:
        create(other_client, straight("theirs"))

        assert client.post("/api/v1/workflows/theirs/runs", json={}).status_code == 404

    def test_draft_workflow_is_409(self, client: TestClient) -> None:
        create(client, straight(), activate=False)

        response = client.post("/api/v1/workflows/onboarding/runs", json={})

        assert response.status_code == 409
        assert response.json()["error"]["code"] == "Conflict"

    def test_unknown_body_field_is_422_with_fields(self, client: TestClient) -> None:
        create(client, straight())

        response = client.post("/api/v1/workflows/onboarding/runs", json={"contcat": {}})

        assert response.status_code == 422
        body = response.json()
        assert body["error"]["code"] == "InvalidInput"
        assert body["error"]["details"]["fields"][0]["loc"] == ["body", "contcat"]
        assert body["error"]["details"]["fields"][0]["message"]

    def test_invalid_contact_email_is_422(self, client: TestClient) -> None:
        create(client, straight())

        response = client.post("/api/v1/workflows/onboarding/runs",
                               json={"contact": {"email": "not-an-address"}})

        assert response.status_code == 422
        assert response.json()["error"]["code"] == "InvalidInput"

    def test_malformed_json_is_400(self, client: TestClient) -> None:
        create(client, straight())

        response = client.post("/api/v1/workflows/onboarding/runs", content=b"{nope",
                               headers={"Content-Type": "application/json"})

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "MalformedInput"

    def test_triggered_run_completes_when_drained(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        create(client, straight())
        run_id = trigger(client, "onboarding", event={"plan": "pro"})

        drain(runtime)

        assert client.get(f"/api/v1/runs/{run_id}").json()["status"] == "COMPLETED"



class TestNextFireTimes:
    def test_schedule_workflows_show_their_next_five_fire_times(self, client):
        from datetime import datetime

        create(client, {"key": "daily", "trigger": {"type": "schedule", "cron": "0 9 * * *",
                                                     "timezone": "Europe/Berlin"},
                        "start": "done", "nodes": {"done": {"type": "END"}}})
        body = client.get("/api/v1/workflows/daily").json()
        times = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in body["next_fire_times"]]
        assert len(times) == 5
        assert all(t.hour in (7, 8) and t.minute == 0 for t in times)  # 09:00 Berlin in UTC
        assert times == sorted(times)
        assert len(set(times)) == 5

    def test_other_triggers_have_none(self, client):
        create(client, {"key": "plain", "trigger": {"type": "manual"}, "start": "done",
                        "nodes": {"done": {"type": "END"}}})
        assert client.get("/api/v1/workflows/plain").json()["next_fire_times"] is None
