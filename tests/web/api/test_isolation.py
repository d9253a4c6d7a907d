"""Another workspace's objects are answered exactly like missing ones: 404, the same body,
and nothing changes on either side. Every route with an id or key in its path has a case,
or the completeness test fails."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from relayflow.services.runtime import Runtime
from tests.support.worker import drain
from tests.web.api.definitions import create, straight, trigger, webhook
from tests.web.api.routes import api_routes, visible_state

ROTATE = ("POST", "/api/v1/workflows/{key}/webhook/rotate")
MISSING_ID = "01a20f1e-0000-7000-8000-000000000000"


@dataclass(frozen=True)
class Case:
    param: str  # the path parameter
    theirs: str  # which of the other workspace's objects goes in it
    missing: str  # a value naming nothing anywhere
    body: Any = None
    query: dict[str, str] | None = None


CASES: dict[tuple[str, str], Case] = {
    ("GET", "/api/v1/workflows/{key}"): Case("key", "workflow", "no-such-flow"),
    ("POST", "/api/v1/workflows/{key}/activate"): Case("key", "workflow", "no-such-flow"),
    ("POST", "/api/v1/workflows/{key}/deactivate"): Case("key", "workflow", "no-such-flow"),
    ("POST", "/api/v1/workflows/{key}/runs"): Case(
        "key", "workflow", "no-such-flow", {"contact": {"email": "ada@example.com"}}),
    ROTATE: Case("key", "webhook_workflow", "no-such-flow"),
    ("GET", "/api/v1/runs/{run_id}"): Case("run_id", "pending_run", MISSING_ID),
    ("POST", "/api/v1/runs/{run_id}/cancel"): Case("run_id", "pending_run", MISSING_ID),
    ("POST", "/api/v1/runs/{run_id}/retry"): Case("run_id", "finished_run", MISSING_ID),
    ("GET", "/api/v1/contacts/{contact_id}"): Case("contact_id", "contact", MISSING_ID),
    ("GET", "/api/v1/contacts/{contact_id}/explain"): Case(
        "contact_id", "contact", MISSING_ID, query={"workflow": "onboarding"}),
    ("POST", "/api/v1/contacts/{contact_id}/suppression/lift"): Case(
        "contact_id", "contact", MISSING_ID, {"channel": "email", "reason": "asked"}),
    ("POST", "/api/v1/contacts/{contact_id}/erase"): Case(
        "contact_id", "contact", MISSING_ID, {"reason": "asked"}),
    ("DELETE", "/api/v1/secrets/{name}"): Case("name", "secret", "NO_SUCH_SECRET"),
    ("DELETE", "/api/v1/keys/{prefix}"): Case("prefix", "key", "rf_00000000"),
    ("GET", "/api/v1/deliveries/{delivery_id}"): Case("delivery_id", "delivery", MISSING_ID),
    ("POST", "/api/v1/deliveries/{delivery_id}/resend"): Case(
        "delivery_id", "delivery", MISSING_ID, {"reason": "asked again"}),
    ("GET", "/api/v1/bulk-operations/{operation_id}"): Case("operation_id", "bulk", MISSING_ID),
    ("POST", "/api/v1/bulk-operations/{operation_id}/cancel"): Case(
        "operation_id", "bulk", MISSING_ID),
    ("PATCH", "/api/v1/members/{email}"): Case(
        "email", "member", "nobody@example.com", {"role": "operator"}),
    ("DELETE", "/api/v1/members/{email}"): Case("email", "member", "nobody@example.com"),
    ("POST", "/api/v1/members/{email}/password"): Case("email", "member",
                                                       "nobody@example.com"),
}
# PUT /secrets/{name} creates or replaces a secret of the caller's own workspace: a name
# another workspace also uses is no id of theirs. TestUpsertByName checks theirs is untouched.
UPSERTS = {("PUT", "/api/v1/secrets/{name}")}
# A channel is a fixed name (email, sms), not an object of any workspace: each workspace has
# its own provider per channel. TestProvidersPerWorkspace checks theirs is never touched.
CHANNELS = {("GET", "/api/v1/providers/{channel}"), ("PUT", "/api/v1/providers/{channel}"),
            ("DELETE", "/api/v1/providers/{channel}")}


@pytest.fixture
def theirs(other_client: TestClient, runtime: Runtime) -> dict[str, str]:
    """One of each object, in the other workspace only."""
    create(other_client, straight("theirs-only"))
    create(other_client, webhook("their-hook"))
    trigger(other_client, "theirs-only")
    drain(runtime)  # a finished run with a delivery attempt
    delivery = other_client.get("/api/v1/deliveries").json()["items"][0]["id"]
    pending = trigger(other_client, "theirs-only")
    finished = trigger(other_client, "theirs-only")
    other_client.post(f"/api/v1/runs/{finished}/cancel")
    other_client.put("/api/v1/secrets/THEIR_TOKEN", json={"value": "theirs"})
    key = other_client.post("/api/v1/keys", json={"role": "viewer"}).json()["prefix"]
    contact = other_client.get("/api/v1/contacts").json()["items"][0]["id"]
    bulk = other_client.post("/api/v1/bulk-operations", json={
        "action": "cancel", "filter": {"ids": [pending]}, "rate": 0.001}).json()["id"]
    other_client.post("/api/v1/members", json={"email": "theirs@example.com", "role": "viewer",
                                               "password": "long enough"})
    return {"workflow": "theirs-only", "webhook_workflow": "their-hook", "pending_run": pending,
            "finished_run": finished, "contact": contact, "secret": "THEIR_TOKEN", "key": key,
            "delivery": delivery, "bulk": bulk, "member": "theirs@example.com"}


def _masked(response: Any, value: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(response.text.replace(value, "<ID>"))
    return body


class TestAnotherWorkspaceIsNotFound:
    def test_every_route_with_a_path_parameter_has_a_case(self, app: FastAPI) -> None:
        with_params = {r for r in api_routes(app) if "{" in r[1]}

        missing = with_params - set(CASES) - UPSERTS - CHANNELS
        assert not missing, f"add these routes to CASES: {sorted(missing)}"
        stale = set(CASES) - with_params - {ROTATE}
        assert not stale, f"these CASES name no route: {sorted(stale)}"

    @pytest.mark.parametrize("route", list(CASES), ids=" ".join)
    def test_answers_404_like_a_missing_id(
        self, app: FastAPI, client: TestClient, other_client: TestClient,
        theirs: dict[str, str], route: tuple[str, str],
    ) -> None:
        if route not in api_routes(app):
            pytest.skip(f"{' '.join(route)} is not registered yet")
        case = CASES[route]
        method, template = route
        value = theirs[case.theirs]
        mine_before, theirs_before = visible_state(client), visible_state(other_client)

        response = client.request(method, template.format(**{case.param: value}),
                                  json=case.body, params=case.query)
        missing = client.request(method, template.format(**{case.param: case.missing}),
                                 json=case.body, params=case.query)

        assert response.status_code == missing.status_code == 404, response.text
        assert _masked(response, value) == _masked(missing, case.missing)
        assert response.json()["error"]["code"] == "NotFound"
        assert visible_state(other_client) == theirs_before
        assert visible_state(client) == mine_before

    def test_malformed_ids_are_404_too(self, client: TestClient) -> None:
        for path in ("/api/v1/runs/x", "/api/v1/runs/x/cancel", "/api/v1/runs/x/retry",
                     "/api/v1/contacts/x", "/api/v1/deliveries/x"):
            method = "GET" if path.count("/") == 4 else "POST"
            assert client.request(method, path).status_code == 404, path


class TestUpsertByName:
    def test_putting_a_secret_another_workspace_has_leaves_theirs_alone(
        self, client: TestClient, other_client: TestClient, theirs: dict[str, str]
    ) -> None:
        before = visible_state(other_client)

        response = client.put(f"/api/v1/secrets/{theirs['secret']}", json={"value": "mine"})

        assert response.status_code == 204
        assert visible_state(other_client) == before
        assert [s["name"] for s in client.get("/api/v1/secrets").json()["items"]] == [
            theirs["secret"]]


THEIR_SMTP = {"type": "smtp", "host": "smtp.example.com", "from": "ops@example.com"}


class TestProvidersPerWorkspace:
    def test_setting_and_deleting_mine_leaves_theirs_alone(
        self, client: TestClient, other_client: TestClient, theirs: dict[str, str]
    ) -> None:
        assert other_client.put("/api/v1/providers/email", json=THEIR_SMTP).status_code == 200
        before = visible_state(other_client)

        assert client.get("/api/v1/providers/email").json() == {"type": "outbox"}
        assert client.put("/api/v1/providers/email",
                          json={**THEIR_SMTP, "port": 2525}).status_code == 200
        assert client.delete("/api/v1/providers/email").status_code == 200

        assert visible_state(other_client) == before
        assert other_client.get("/api/v1/providers/email").json()["port"] == 587


class TestNetworkPerWorkspace:
    def test_setting_mine_leaves_theirs_alone(
        self, client: TestClient, other_client: TestClient, theirs: dict[str, str]
    ) -> None:
        assert other_client.put("/api/v1/settings/network",
                                json={"allow": ["10.0.0.0/8"]}).status_code == 200
        before = visible_state(other_client)

        assert client.get("/api/v1/settings/network").json() == {"allow": []}
        assert client.put("/api/v1/settings/network",
                          json={"allow": ["127.0.0.1/32"]}).status_code == 200

        assert visible_state(other_client) == before
        assert other_client.get("/api/v1/settings/network").json() == {"allow": ["10.0.0.0/8"]}


class TestFrequencyCapsPerWorkspace:
    def test_setting_mine_leaves_theirs_alone(
        self, client: TestClient, other_client: TestClient, theirs: dict[str, str]
    ) -> None:
        path = "/api/v1/settings/frequency-caps"
        assert other_client.put(path, json={"email": 3}).status_code == 200
        before = visible_state(other_client)

        assert client.get(path).json() == {"email": None, "sms": None}
        assert client.put(path, json={"email": 1, "sms": 1}).status_code == 200

        assert visible_state(other_client) == before
        assert other_client.get(path).json() == {"email": 3, "sms": None}
