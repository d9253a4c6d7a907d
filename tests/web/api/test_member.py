"""/api/v1/members: list (any role), add (admin only)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from relayflow.services import auth as auth_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import Member

PASSWORD = "correct horse battery staple"


class TestAddMember:
    def test_adds_a_member_who_can_log_in(self, client: TestClient, runtime: Runtime) -> None:
        response = client.post("/api/v1/members", json={
            "email": " Op@Example.com", "role": "operator", "password": PASSWORD})

        assert response.status_code == 201
        body = response.json()
        assert set(body) == {"email", "role", "created_at"}
        assert (body["email"], body["role"]) == ("op@example.com", "operator")
        with session_scope(runtime.sessions) as session:
            member = session.scalar(select(Member).where(Member.email == "op@example.com"))
            assert member is not None
            assert PASSWORD not in member.password_hash
            assert auth_service.verify_password(member, PASSWORD)

    def test_same_email_again_is_409(self, client: TestClient) -> None:
        client.post("/api/v1/members", json={
            "email": "op@example.com", "role": "operator", "password": PASSWORD})

        response = client.post("/api/v1/members", json={
            "email": "OP@example.com", "role": "viewer", "password": PASSWORD})

        assert response.status_code == 409
        assert response.json()["error"]["code"] == "Conflict"

    @pytest.mark.parametrize("body", [
        {"email": "op@example.com", "role": "operator"},
        {"email": "op@example.com", "role": "operator", "password": "short"},
        {"email": "op@example.com", "role": "owner", "password": PASSWORD},
        {"email": "not-an-email", "role": "viewer", "password": PASSWORD},
        {"email": "op@example.com", "role": "viewer", "password": PASSWORD, "x": 1},
    ])
    def test_invalid_body_is_422(self, client: TestClient, body: dict[str, Any]) -> None:
        response = client.post("/api/v1/members", json=body)

        assert response.status_code == 422
        assert PASSWORD not in response.text
        assert client.get("/api/v1/members").json()["items"] == []

    @pytest.mark.parametrize("role", ["operator", "viewer"])
    def test_only_admins_may_add(
        self, client: TestClient, app: Any, role: str
    ) -> None:
        key = client.post("/api/v1/keys", json={"role": role}).json()["api_key"]

        with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as limited:
            response = limited.post("/api/v1/members", json={
                "email": "op@example.com", "role": "viewer", "password": PASSWORD})

        assert response.status_code == 403
        assert client.get("/api/v1/members").json()["items"] == []


class TestListMembers:
    def test_lists_emails_and_roles_never_hashes(
        self, client: TestClient, viewer_client: TestClient
    ) -> None:
        for email, role in (("a@example.com", "admin"), ("v@example.com", "viewer")):
            client.post("/api/v1/members", json={"email": email, "role": role,
                                                 "password": PASSWORD})

        response = viewer_client.get("/api/v1/members")

        assert response.status_code == 200
        items = response.json()["items"]
        assert [(m["email"], m["role"]) for m in items] == [
            ("a@example.com", "admin"), ("v@example.com", "viewer")]
        assert all(set(m) == {"email", "role", "created_at"} for m in items)
        assert "argon2" not in response.text

    def test_another_workspace_members_are_not_listed(
        self, client: TestClient, other_client: TestClient
    ) -> None:
        other_client.post("/api/v1/members", json={
            "email": "theirs@example.com", "role": "admin", "password": PASSWORD})

        assert client.get("/api/v1/members").json() == {"items": []}
