"""Roles: admin does everything; operator everything but keys and members; viewer reads
only. Every write endpoint on the app is in the matrix, or the completeness test fails."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from relayflow.services.runtime import Runtime
from tests.support.flows import suppress
from tests.support.worker import drain
from tests.web.api.definitions import create, straight, trigger, webhook
from tests.web.api.routes import api_routes, visible_state

if TYPE_CHECKING:
    from tests.conftest import WorkspaceHandle

ROLES = ("admin", "operator", "viewer")
ROTATE = ("POST", "/api/v1/workflows/{key}/webhook/rotate")


@dataclass(frozen=True)
class Case:
    lowest: str  # the lowest role allowed: "operator" or "admin"
    params: dict[str, str] = field(default_factory=dict)  # path parameter -> fixture name
    body: Any = None
    status: int = 200


WRITES: dict[tuple[str, str], Case] = {
    ("POST", "/api/v1/workflows"): Case("operator", body=straight("another"), status=201),
    ("POST", "/api/v1/workflows/{key}/activate"): Case("operator", {"key": "workflow"}),
    ("POST", "/api/v1/workflows/{key}/deactivate"): Case("operator", {"key": "workflow"}),
    ("POST", "/api/v1/workflows/{key}/runs"): Case(
        "operator", {"key": "workflow"}, {"contact": {"email": "new@example.com"}}, 202),
    ROTATE: Case("operator", {"key": "webhook_workflow"}),
    ("POST", "/api/v1/deliveries/{delivery_id}/resend"): Case(
        "operator", {"delivery_id": "delivery"}, {"reason": "asked again"}, 202),
    ("POST", "/api/v1/runs/{run_id}/cancel"): Case("operator", {"run_id": "pending_run"}),
    ("POST", "/api/v1/runs/{run_id}/retry"): Case("operator", {"run_id": "finished_run"},
                                                  status=202),
    ("POST", "/api/v1/contacts"): Case("operator", body={"email": "new@example.com"},
                                       status=201),
    ("POST", "/api/v1/contacts/{contact_id}/suppression/lift"): Case(
        "admin", {"contact_id": "suppressed_contact"}, {"channel": "email", "reason": "asked"}),
    ("POST", "/api/v1/contacts/{contact_id}/erase"): Case(
        "admin", {"contact_id": "suppressed_contact"}, {"reason": "asked"}),
    ("PUT", "/api/v1/secrets/{name}"): Case("operator", {"name": "secret"}, {"value": "v2"},
                                            204),
    ("DELETE", "/api/v1/secrets/{name}"): Case("operator", {"name": "secret"}, status=204),
    ("POST", "/api/v1/keys"): Case("admin", body={"role": "viewer"}, status=201),
    ("DELETE", "/api/v1/keys/{prefix}"): Case("admin", {"prefix": "spare_key"}),
    ("PUT", "/api/v1/providers/{channel}"): Case(
        "admin", {"channel": "channel"}, {"type": "http", "url": "https://mail.example.com/send"}),
    ("DELETE", "/api/v1/providers/{channel}"): Case("admin", {"channel": "channel"}),
    ("PUT", "/api/v1/settings/network"): Case(
        "admin", body={"allow": ["127.0.0.1/32", "crm.internal"]}),
    ("PUT", "/api/v1/settings/frequency-caps"): Case("admin", body={"email": 3, "sms": 2}),
    ("PUT", "/api/v1/settings/retention"): Case("admin", body={"days": 30, "failed_days": 90}),
    ("POST", "/api/v1/bulk-operations"): Case(
        "operator", body={"action": "retry", "filter": {"status": "CANCELED"}}, status=202),
    ("POST", "/api/v1/bulk-operations/{operation_id}/cancel"): Case(
        "operator", {"operation_id": "bulk"}),
    ("POST", "/api/v1/members"): Case(
        "admin", body={"email": "m@example.com", "role": "viewer", "password": "long enough"},
        status=201),
    ("PATCH", "/api/v1/members/{email}"): Case("admin", {"email": "member"},
                                                {"role": "operator"}),
    ("DELETE", "/api/v1/members/{email}"): Case("admin", {"email": "member"}),
    ("POST", "/api/v1/members/{email}/password"): Case("admin", {"email": "member"}),
}
# Reads every role may make; the rest (listed here) are admin only.
ADMIN_READS = {("GET", "/api/v1/keys")}
# What a read needs besides its path (a required query parameter).
QUERIES = {"/api/v1/contacts/{contact_id}/explain": {"workflow": "onboarding"}}


@pytest.fixture
def objects(client: TestClient, runtime: Runtime) -> dict[str, str]:
    """One of each object the write endpoints act on, made by the admin."""
    create(client, straight())
    create(client, webhook())
    trigger(client, "onboarding")
    drain(runtime)  # a finished run with a delivery attempt
    delivery = client.get("/api/v1/deliveries").json()["items"][0]["id"]
    client.put("/api/v1/providers/email",
               json={"type": "smtp", "host": "smtp.example.com", "from": "ops@example.com"})
    pending = trigger(client, "onboarding")
    finished = trigger(client, "onboarding")
    client.post(f"/api/v1/runs/{finished}/cancel")
    client.put("/api/v1/secrets/CRM_TOKEN", json={"value": "v1"})
    spare = client.post("/api/v1/keys", json={"role": "viewer"}).json()["prefix"]
    bulk = client.post("/api/v1/bulk-operations", json={
        "action": "cancel", "filter": {"ids": [pending]}, "rate": 0.001}).json()["id"]
    lin = client.post("/api/v1/contacts", json={"email": "lin@example.com"}).json()
    suppress(runtime, "lin@example.com", "email", "unsubscribed")
    client.post("/api/v1/members", json={"email": "staff@example.com", "role": "viewer",
                                         "password": "long enough"})
    return {"workflow": "onboarding", "webhook_workflow": "inbound", "pending_run": pending,
            "finished_run": finished, "secret": "CRM_TOKEN", "spare_key": spare,
            "channel": "email", "delivery": delivery, "bulk": bulk,
            "suppressed_contact": lin["id"], "member": "staff@example.com"}


@pytest.fixture
def as_role(app: FastAPI, client: TestClient) -> Iterator[Any]:
    opened: list[TestClient] = []

    def make(role: str) -> TestClient:
        key = client.post("/api/v1/keys", json={"role": role, "name": f"as {role}"})
        limited = TestClient(app, headers={"Authorization": f"Bearer {key.json()['api_key']}"})
        opened.append(limited.__enter__())
        return limited

    yield make
    for limited in opened:
        limited.__exit__(None, None, None)


def _allowed(role: str, lowest: str) -> bool:
    return ROLES.index(role) <= ROLES.index(lowest)


class TestRoleMatrix:
    def test_every_write_endpoint_has_a_case(self, app: FastAPI) -> None:
        writes = {r for r in api_routes(app) if r[0] != "GET"}

        missing = writes - set(WRITES)
        assert not missing, f"add these write endpoints to WRITES: {sorted(missing)}"
        stale = set(WRITES) - writes - {ROTATE}
        assert not stale, f"these WRITES cases name no endpoint: {sorted(stale)}"

    @pytest.mark.parametrize("role", ROLES)
    @pytest.mark.parametrize("route", list(WRITES), ids=" ".join)
    def test_write(
        self, app: FastAPI, client: TestClient, objects: dict[str, str], as_role: Any,
        route: tuple[str, str], role: str,
    ) -> None:
        if route not in api_routes(app):
            pytest.skip(f"{' '.join(route)} is not registered yet")
        case = WRITES[route]
        method, template = route
        path = template.format(**{p: objects[f] for p, f in case.params.items()})
        caller = as_role(role)
        allowed = _allowed(role, case.lowest)
        before = None if allowed else visible_state(client)

        response = caller.request(method, path, json=case.body)

        if allowed:
            assert response.status_code == case.status, response.text
        else:
            assert response.status_code == 403, response.text
            assert response.json()["error"]["code"] == "Forbidden"
            assert visible_state(client) == before, "a refused request changed something"

    @pytest.mark.parametrize("role", ROLES)
    def test_reads(
        self, app: FastAPI, client: TestClient, objects: dict[str, str], as_role: Any,
        role: str,
    ) -> None:
        caller = as_role(role)
        values = {"key": "onboarding", "run_id": objects["pending_run"], "contact_id": "",
                  "channel": objects["channel"], "delivery_id": objects["delivery"],
                  "operation_id": objects["bulk"]}
        contact = client.get("/api/v1/contacts").json()["items"][0]["id"]
        values["contact_id"] = contact

        for method, template in sorted(r for r in api_routes(app) if r[0] == "GET"):
            response = caller.get(template.format(**values), params=QUERIES.get(template))
            expected = 403 if (method, template) in ADMIN_READS and role != "admin" else 200
            assert response.status_code == expected, (template, response.text)

    def test_viewer_session_cannot_cancel_and_the_run_is_untouched(
        self, client: TestClient, viewer_client: TestClient, objects: dict[str, str],
        workspace: WorkspaceHandle,
    ) -> None:
        run_id = objects["pending_run"]

        assert viewer_client.post(f"/api/v1/runs/{run_id}/cancel").status_code == 403
        assert client.get(f"/api/v1/runs/{run_id}").json()["status"] == "PENDING"
