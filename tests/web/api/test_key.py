"""/api/v1/keys: create (shown once), list, revoke. Admin only."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import ApiKey

if TYPE_CHECKING:
    from tests.conftest import WorkspaceHandle

FIELDS = {"prefix", "name", "role", "created_by", "created_at", "last_used_at", "revoked_at"}


def _prefix(key: str) -> str:
    return key.split(".", 1)[0]


class TestCreateKey:
    def test_answers_the_full_key_once(
        self, client: TestClient, workspace: WorkspaceHandle
    ) -> None:
        response = client.post("/api/v1/keys", json={"name": "ci", "role": "operator"})

        assert response.status_code == 201
        body = response.json()
        assert set(body) == FIELDS | {"api_key"}
        assert body["api_key"].startswith(body["prefix"] + ".")
        assert (body["name"], body["role"]) == ("ci", "operator")
        assert body["created_by"] == f"key:{_prefix(workspace.api_key)}"
        assert body["last_used_at"] is None
        assert body["revoked_at"] is None
        assert body["api_key"] not in client.get("/api/v1/keys").text

    def test_new_key_works_with_its_role(self, app: FastAPI, client: TestClient) -> None:
        key = client.post("/api/v1/keys", json={"role": "viewer"}).json()["api_key"]

        with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as new_client:
            assert new_client.get("/api/v1/runs").status_code == 200
            assert new_client.post("/api/v1/contacts", json={"email": "a@b.co"}).status_code \
                == 403

    def test_only_a_hash_is_stored(
        self, client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        key = client.post("/api/v1/keys", json={"role": "viewer"}).json()["api_key"]

        with session_scope(runtime.sessions) as session:
            stored = session.scalar(select(ApiKey).where(ApiKey.prefix == _prefix(key)))
            assert stored is not None
            assert key.split(".", 1)[1] not in stored.hash

    @pytest.mark.parametrize("body", [
        {}, {"role": "owner"}, {"role": "admin", "name": "x" * 201},
        {"role": "admin", "extra": True}, {"role": "admin", "name": "nul\u0000"},
    ])
    def test_invalid_body_is_422(self, client: TestClient, body: dict[str, object]) -> None:
        response = client.post("/api/v1/keys", json=body)

        assert response.status_code == 422
        assert response.json()["error"]["code"] == "InvalidInput"


class TestListKeys:
    def test_lists_prefixes_and_never_secrets(
        self, client: TestClient, workspace: WorkspaceHandle
    ) -> None:
        created = client.post("/api/v1/keys", json={"name": "ci", "role": "viewer"}).json()

        response = client.get("/api/v1/keys")

        assert response.status_code == 200
        items = response.json()["items"]
        assert [k["prefix"] for k in items] == [_prefix(workspace.api_key), created["prefix"]]
        assert all(set(k) == FIELDS for k in items)
        assert workspace.api_key.split(".", 1)[1] not in response.text
        assert created["api_key"].split(".", 1)[1] not in response.text
        assert items[0]["last_used_at"] is not None  # this very request used it

    def test_revoked_keys_are_listed_with_revoked_at(self, client: TestClient) -> None:
        prefix = client.post("/api/v1/keys", json={"role": "viewer"}).json()["prefix"]
        client.delete(f"/api/v1/keys/{prefix}")

        items = {k["prefix"]: k for k in client.get("/api/v1/keys").json()["items"]}

        assert items[prefix]["revoked_at"] is not None

    def test_another_workspace_keys_are_not_listed(
        self, client: TestClient, other_client: TestClient, other_workspace: WorkspaceHandle
    ) -> None:
        prefixes = [k["prefix"] for k in client.get("/api/v1/keys").json()["items"]]

        assert _prefix(other_workspace.api_key) not in prefixes


class TestRevokeKey:
    def test_revoked_key_is_refused_afterwards(self, app: FastAPI, client: TestClient) -> None:
        created = client.post("/api/v1/keys", json={"role": "operator"}).json()

        response = client.delete(f"/api/v1/keys/{created['prefix']}")

        assert response.status_code == 200
        assert response.json()["prefix"] == created["prefix"]
        assert response.json()["revoked_at"] is not None
        with TestClient(app, headers={"Authorization": f"Bearer {created['api_key']}"}) as old:
            refused = old.get("/api/v1/runs")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "Unauthorized"

    def test_revoking_your_own_key_locks_it_out(self, client: TestClient,
                                                workspace: WorkspaceHandle) -> None:
        response = client.delete(f"/api/v1/keys/{_prefix(workspace.api_key)}")

        assert response.status_code == 200
        assert client.get("/api/v1/runs").status_code == 401

    def test_revoking_again_is_409(self, client: TestClient) -> None:
        prefix = client.post("/api/v1/keys", json={"role": "viewer"}).json()["prefix"]
        client.delete(f"/api/v1/keys/{prefix}")

        response = client.delete(f"/api/v1/keys/{prefix}")

        assert response.status_code == 409
        assert response.json()["error"]["code"] == "Conflict"

    @pytest.mark.parametrize("prefix", ["rf_00000000", "not a prefix", "rf_%"])
    def test_unknown_prefix_is_404(self, client: TestClient, prefix: str) -> None:
        response = client.delete(f"/api/v1/keys/{prefix}")

        assert response.status_code == 404
        assert response.json()["error"]["code"] == "NotFound"

    def test_another_workspace_key_is_404_and_keeps_working(
        self, client: TestClient, other_client: TestClient, other_workspace: WorkspaceHandle
    ) -> None:
        response = client.delete(f"/api/v1/keys/{_prefix(other_workspace.api_key)}")

        assert response.status_code == 404
        assert other_client.get("/api/v1/runs").status_code == 200


class TestKeysAreAdminOnly:
    @pytest.mark.parametrize("role", ["operator", "viewer"])
    @pytest.mark.parametrize(("method", "path", "body"), [
        ("GET", "/api/v1/keys", None),
        ("POST", "/api/v1/keys", {"role": "admin"}),
        ("DELETE", "/api/v1/keys/{prefix}", None),
    ])
    def test_other_roles_are_403(
        self, app: FastAPI, client: TestClient, workspace: WorkspaceHandle, role: str,
        method: str, path: str, body: object,
    ) -> None:
        key = client.post("/api/v1/keys", json={"role": role}).json()["api_key"]
        target = _prefix(workspace.api_key)

        with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as limited:
            response = limited.request(method, path.format(prefix=target), json=body)

        assert response.status_code == 403
        assert response.json()["error"]["code"] == "Forbidden"
        assert client.get("/api/v1/keys").status_code == 200  # the admin key still works
