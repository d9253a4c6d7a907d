"""POST /hooks/{token}: payload, contact mapping, errors, idempotency."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from relayflow.config import Settings
from relayflow.services import contact as contact_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.web.app import create_app
from relayflow.worker.loop import Worker
from tests.support.processes import wait_until
from tests.support.worker import drain
from tests.web.api.definitions import create
from tests.web.hooks.conftest import contacts, hook_definition, install_hook, run_count

ORDER = {"kind": "order", "email": "Ada.Lovelace@Example.COM", "order": {"id": 42}}


class TestReceiveWebhook:
    def test_answers_202_with_a_pending_run(self, client: TestClient) -> None:
        path = install_hook(client, hook_definition())

        response = client.post(path, json=ORDER)

        assert response.status_code == 202
        body = response.json()
        assert set(body) == {"id", "status", "duplicate"}
        assert body["status"] == "PENDING"
        assert body["duplicate"] is False

    def test_needs_no_api_key(self, client: TestClient, anonymous_client: TestClient) -> None:
        path = install_hook(client, hook_definition())

        assert anonymous_client.post(path, json=ORDER).status_code == 202

    def test_payload_is_the_run_event_and_the_worker_completes_it(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        path = install_hook(client, hook_definition())
        run_id = client.post(path, json=ORDER).json()["id"]

        drain(runtime)

        run = client.get(f"/api/v1/runs/{run_id}").json()
        assert run["trigger"] == "webhook"
        assert run["event"] == ORDER
        assert run["status"] == "COMPLETED"  # the CONDITION read event.kind

    def test_the_embedded_worker_is_woken_and_walks_the_run(
        self, settings: Settings, runtime: Runtime, workspace
    ) -> None:
        # The worker would otherwise sleep a minute: only the wake-up makes it this quick.
        lazy = settings.model_copy(update={"poll_seconds": 60, "schedule_poll_seconds": 60})
        app = create_app(lazy, runtime=runtime,
                         worker=lambda rt: Worker(rt, lazy))
        with TestClient(app, headers=workspace.headers) as client:
            path = install_hook(client, hook_definition())
            time.sleep(0.2)  # let the worker reach its idle wait

            run_id = client.post(path, json=ORDER).json()["id"]

            wait_until(lambda: client.get(f"/api/v1/runs/{run_id}").json()["status"]
                       == "COMPLETED", timeout=5, what="the webhook run to complete")

    def test_the_event_drives_the_walk(self, client: TestClient, runtime: Runtime) -> None:
        path = install_hook(client, hook_definition())
        run_id = client.post(path, json={"kind": "refund"}).json()["id"]

        drain(runtime)

        run = client.get(f"/api/v1/runs/{run_id}").json()
        assert run["status"] == "FAILED"
        assert run["error"] == "not an order: refund"

    def test_without_a_mapping_the_run_has_no_contact(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        path = install_hook(client, hook_definition())

        run_id = client.post(path, json=ORDER).json()["id"]

        assert client.get(f"/api/v1/runs/{run_id}").json()["contact"] is None
        assert contacts(runtime) == []

    def test_mapping_creates_the_contact_with_the_email_lower_cased(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        path = install_hook(client, hook_definition(contact={"email": "{{ event.email }}"}))

        run_id = client.post(path, json=ORDER).json()["id"]

        run = client.get(f"/api/v1/runs/{run_id}").json()
        assert run["contact"]["email"] == "ada.lovelace@example.com"
        assert [c.email for c in contacts(runtime)] == ["ada.lovelace@example.com"]

    def test_mapping_finds_an_existing_contact(
        self, client: TestClient, runtime: Runtime, workspace
    ) -> None:
        with session_scope(runtime.sessions) as session:
            existing = contact_service.resolve(session, workspace_id=workspace.id,
                                               spec={"email": "ada.lovelace@example.com"},
                                               now=datetime.now(UTC))
        path = install_hook(client, hook_definition(contact={"email": "{{ event.email }}"}))

        run_id = client.post(path, json=ORDER).json()["id"]

        assert client.get(f"/api/v1/runs/{run_id}").json()["contact"]["id"] == str(existing.id)
        assert len(contacts(runtime)) == 1

    def test_mapping_normalises_the_phone_to_e164(self, client: TestClient) -> None:
        path = install_hook(client, hook_definition(contact={"phone": "{{ event.customer.tel }}"}))

        response = client.post(path, json={"kind": "order",
                                           "customer": {"tel": "+1 (415) 555-0123"}})

        run = client.get(f"/api/v1/runs/{response.json()['id']}").json()
        assert run["contact"]["phone"] == "+14155550123"

    def test_mapping_reads_national_numbers_in_the_default_region(
        self, settings: Settings, runtime: Runtime, workspace
    ) -> None:
        app = create_app(settings.model_copy(update={"default_phone_region": "GB"}),
                         runtime=runtime)
        with TestClient(app, headers=workspace.headers) as client:
            path = install_hook(client, hook_definition(contact={"phone": "{{ event.tel }}"}))

            response = client.post(path, json={"kind": "order", "tel": "020 7946 0958"})

            run = client.get(f"/api/v1/runs/{response.json()['id']}").json()
            assert run["contact"]["phone"] == "+442079460958"

    def test_mapping_that_fails_to_render_is_422_and_opens_no_run(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        path = install_hook(client, hook_definition(contact={"email": "{{ event.email }}"}))

        response = client.post(path, json={"kind": "order"})

        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "InvalidInput"
        assert "contact mapping" in error["message"]
        assert "email" in error["message"]
        assert run_count(runtime) == 0
        assert contacts(runtime) == []

    @pytest.mark.parametrize(("mapping", "value"), [
        ({"email": "{{ event.value }}"}, "not-an-email"),
        ({"phone": "{{ event.value }}"}, "call me maybe"),
    ])
    def test_mapping_that_gives_an_invalid_address_is_422_and_opens_no_run(
        self, client: TestClient, runtime: Runtime, mapping: dict[str, str], value: str
    ) -> None:
        path = install_hook(client, hook_definition(contact=mapping))

        response = client.post(path, json={"kind": "order", "value": value})

        assert response.status_code == 422
        assert "invalid contact" in response.json()["error"]["message"]
        assert run_count(runtime) == 0

    def test_unknown_token_is_404(self, client: TestClient) -> None:
        install_hook(client, hook_definition())

        response = client.post("/hooks/not-a-token", json=ORDER)

        assert response.status_code == 404
        assert response.json()["error"]["code"] == "NotFound"

    def test_workflow_no_longer_triggered_by_webhook_is_404(self, client: TestClient) -> None:
        definition = hook_definition()
        path = install_hook(client, definition)
        create(client, {**definition, "trigger": {"type": "manual"}})

        assert client.post(path, json=ORDER).status_code == 404

    def test_inactive_workflow_is_409_and_opens_no_run(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        path = install_hook(client, hook_definition(contact={"email": "{{ event.email }}"}))
        client.post("/api/v1/workflows/inbound/deactivate")

        response = client.post(path, json=ORDER)

        assert response.status_code == 409
        assert response.json()["error"]["code"] == "Conflict"
        assert run_count(runtime) == 0
        assert contacts(runtime) == []

    def test_draft_workflow_is_409(self, client: TestClient) -> None:
        path = install_hook(client, hook_definition(), activate=False)

        assert client.post(path, json=ORDER).status_code == 409

    @pytest.mark.parametrize("body", [b"{not json", b"", b'{"a": NaN}', b"\xff\xfe{}"])
    def test_malformed_json_is_400(
        self, client: TestClient, runtime: Runtime, body: bytes
    ) -> None:
        path = install_hook(client, hook_definition())

        response = client.post(path, content=body,
                               headers={"Content-Type": "application/json"})

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "MalformedInput"
        assert run_count(runtime) == 0

    @pytest.mark.parametrize("payload", [[1, 2], "order", 42, None, True])
    def test_json_that_is_not_an_object_is_422(
        self, client: TestClient, runtime: Runtime, payload: object
    ) -> None:
        path = install_hook(client, hook_definition())

        response = client.post(path, content=json.dumps(payload),
                               headers={"Content-Type": "application/json"})

        assert response.status_code == 422
        assert "JSON object" in response.json()["error"]["message"]
        assert run_count(runtime) == 0

    def test_a_nul_character_is_422_on_every_database(self, client: TestClient) -> None:
        path = install_hook(client, hook_definition())

        response = client.post(path, json={"kind": "order", "note": "a\u0000b"})

        assert response.status_code == 422

    def test_body_over_one_mib_is_413_and_opens_no_run(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        path = install_hook(client, hook_definition())
        padding = "x" * (2 * 1024 * 1024)

        response = client.post(path, content=json.dumps({"kind": "order", "pad": padding}),
                               headers={"Content-Type": "application/json"})

        assert response.status_code == 413
        assert response.json()["error"]["code"] == "PayloadTooLarge"
        assert run_count(runtime) == 0


class TestReceiveWebhookIdempotency:
    def test_same_key_returns_the_first_run_marked_duplicate(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        path = install_hook(client, hook_definition())
        first = client.post(path, json=ORDER, headers={"Idempotency-Key": "order-42"}).json()

        second = client.post(path, json=ORDER, headers={"Idempotency-Key": "order-42"})

        assert second.status_code == 202
        assert second.json() == {**first, "duplicate": True}
        assert run_count(runtime) == 1
        assert client.get(f"/api/v1/runs/{first['id']}").json()["duplicates_ignored"] == 1

    def test_different_keys_open_different_runs(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        path = install_hook(client, hook_definition())

        a = client.post(path, json=ORDER, headers={"Idempotency-Key": "a"}).json()
        b = client.post(path, json=ORDER, headers={"Idempotency-Key": "b"}).json()

        assert a["id"] != b["id"]
        assert run_count(runtime) == 2

    def test_without_a_key_every_request_opens_a_run(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        path = install_hook(client, hook_definition())

        client.post(path, json=ORDER)
        client.post(path, json=ORDER)

        assert run_count(runtime) == 2

    def test_same_key_on_another_workflow_opens_its_own_run(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        one = install_hook(client, hook_definition("one"))
        two = install_hook(client, hook_definition("two"))

        a = client.post(one, json=ORDER, headers={"Idempotency-Key": "k"}).json()
        b = client.post(two, json=ORDER, headers={"Idempotency-Key": "k"}).json()

        assert a["id"] != b["id"]
        assert b["duplicate"] is False

    def test_key_of_200_characters_is_accepted(self, client: TestClient) -> None:
        path = install_hook(client, hook_definition())

        response = client.post(path, json=ORDER, headers={"Idempotency-Key": "k" * 200})

        assert response.status_code == 202

    def test_key_over_200_characters_is_422_and_opens_no_run(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        path = install_hook(client, hook_definition())

        response = client.post(path, json=ORDER, headers={"Idempotency-Key": "k" * 201})

        assert response.status_code == 422
        assert "Idempotency-Key" in response.json()["error"]["message"]
        assert run_count(runtime) == 0


class TestReceiveWebhookOpenApi:
    def test_documents_the_endpoint_and_its_errors(self, app: FastAPI) -> None:
        with TestClient(app) as client:
            spec = client.get("/api/openapi.json").json()

        operation = spec["paths"]["/hooks/{token}"]["post"]
        assert set(operation["responses"]) >= {"202", "400", "401", "404", "409", "413", "422"}
        headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
        assert headers == {"relayflow-signature", "idempotency-key"}
