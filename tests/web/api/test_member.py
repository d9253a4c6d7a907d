"""/api/v1/members: list (any role); add, change role, remove, reset password (admin only)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from relayflow.services import auth as auth_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import AuditEvent, Member
from tests.support.pages import PASSWORD as MEMBER_PASSWORD
from tests.web.conftest import ADMIN, OPERATOR, VIEWER

PASSWORD = "correct horse battery staple"


def _member(runtime: Runtime, email: str) -> Member | None:
    with session_scope(runtime.sessions) as session:
        return session.scalar(select(Member).where(Member.email == email))


def _role(runtime: Runtime, email: str) -> str | None:
    member = _member(runtime, email)
    return None if member is None else member.role


def _audit(runtime: Runtime, action: str) -> list[AuditEvent]:
    with session_scope(runtime.sessions) as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def _key_made_by(runtime: Runtime, workspace_id: Any, email: str, role: str) -> str:
    """A key as a member makes it in the settings, signed in: created_by is their email."""
    with session_scope(runtime.sessions) as session:
        _, key = auth_service.create_api_key(session, workspace_id=workspace_id, role=role,
                                             created_by=email, now=datetime.now(UTC))
    return key


def _status_with(app: Any, key: str) -> int:
    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as api:
        return api.get("/api/v1/members").status_code


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


class TestChangeRole:
    def test_changes_the_role_matching_the_email_as_stored(
        self, client: TestClient, members: dict[str, str], runtime: Runtime,
        workspace: Any,
    ) -> None:
        response = client.patch(f"/api/v1/members/ {OPERATOR.upper()}", json={"role": "viewer"})

        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["email"], body["role"], body["revoked_keys"]) == (OPERATOR, "viewer", [])
        [event] = _audit(runtime, "member.role")
        assert event.actor == f"key:{workspace.api_key.split('.')[0]}"
        assert event.detail == {"email": OPERATOR, "from": "operator", "to": "viewer",
                                "revoked_keys": []}

    def test_the_same_role_again_changes_and_records_nothing(
        self, client: TestClient, members: dict[str, str], runtime: Runtime
    ) -> None:
        response = client.patch(f"/api/v1/members/{VIEWER}", json={"role": "viewer"})

        assert (response.status_code, response.json()["role"]) == (200, "viewer")
        assert _audit(runtime, "member.role") == []

    def test_a_demotion_revokes_their_keys_above_the_new_role(
        self, app: Any, client: TestClient, members: dict[str, str], runtime: Runtime,
        workspace: Any,
    ) -> None:
        client.post("/api/v1/members", json={"email": "second@acme.test", "role": "admin",
                                             "password": PASSWORD})
        admin_key = _key_made_by(runtime, workspace.id, ADMIN, "admin")
        operator_key = _key_made_by(runtime, workspace.id, ADMIN, "operator")

        response = client.patch(f"/api/v1/members/{ADMIN}", json={"role": "operator"})

        assert response.status_code == 200, response.text
        assert response.json()["revoked_keys"] == [admin_key.split(".")[0]]
        assert _status_with(app, admin_key) == 401
        assert _status_with(app, operator_key) == 200
        [revoked] = _audit(runtime, "key.revoke")
        assert revoked.detail["reason"] == "member.role"

    def test_demoting_the_last_admin_is_409(
        self, client: TestClient, members: dict[str, str], runtime: Runtime
    ) -> None:
        response = client.patch(f"/api/v1/members/{ADMIN}", json={"role": "operator"})

        assert response.status_code == 409
        assert response.json()["error"]["message"] == (
            f"{ADMIN} is the last admin of this workspace; make another member admin first")
        assert _role(runtime, ADMIN) == "admin"

    @pytest.mark.parametrize("body", [{"role": "owner"}, {}, {"role": "viewer", "x": 1}])
    def test_a_bad_body_is_422(
        self, client: TestClient, members: dict[str, str], runtime: Runtime,
        body: dict[str, Any],
    ) -> None:
        response = client.patch(f"/api/v1/members/{OPERATOR}", json=body)

        assert response.status_code == 422
        assert _role(runtime, OPERATOR) == "operator"

    @pytest.mark.parametrize("email", ["nobody@acme.test", "not an address"])
    def test_an_unknown_member_is_404(
        self, client: TestClient, members: dict[str, str], email: str
    ) -> None:
        response = client.patch(f"/api/v1/members/{email}", json={"role": "viewer"})

        assert response.status_code == 404
        assert response.json()["error"]["message"] == f"no member {email!r} in this workspace"


class TestRemove:
    def test_removes_the_member_and_revokes_the_keys_they_made(
        self, app: Any, client: TestClient, members: dict[str, str], runtime: Runtime,
        workspace: Any,
    ) -> None:
        theirs = _key_made_by(runtime, workspace.id, OPERATOR, "operator")
        others = _key_made_by(runtime, workspace.id, VIEWER, "viewer")

        response = client.delete(f"/api/v1/members/{OPERATOR.upper()}")

        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["email"], body["role"], body["sessions_ended"]) == (
            OPERATOR, "operator", 0)
        assert body["revoked_keys"] == [theirs.split(".")[0]]
        assert _member(runtime, OPERATOR) is None
        assert OPERATOR not in client.get("/api/v1/members").text
        assert (_status_with(app, theirs), _status_with(app, others)) == (401, 200)
        [event] = _audit(runtime, "member.remove")
        assert event.detail == {"email": OPERATOR, "role": "operator", "sessions_ended": 0,
                                "revoked_keys": [theirs.split(".")[0]]}
        assert client.delete(f"/api/v1/members/{OPERATOR}").status_code == 404

    def test_removing_the_last_admin_is_409(
        self, client: TestClient, members: dict[str, str], runtime: Runtime
    ) -> None:
        response = client.delete(f"/api/v1/members/{ADMIN}")

        assert response.status_code == 409
        assert "is the last admin" in response.json()["error"]["message"]
        assert _member(runtime, ADMIN) is not None
        assert _audit(runtime, "member.remove") == []

    def test_an_admin_may_go_once_another_admin_stays(
        self, client: TestClient, members: dict[str, str], runtime: Runtime
    ) -> None:
        assert client.patch(f"/api/v1/members/{OPERATOR}",
                            json={"role": "admin"}).status_code == 200

        assert client.delete(f"/api/v1/members/{ADMIN}").status_code == 200
        assert client.delete(f"/api/v1/members/{OPERATOR}").status_code == 409

    def test_an_address_with_a_slash_is_reachable(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        client.post("/api/v1/members", json={"email": "a/b@acme.test", "role": "viewer",
                                             "password": PASSWORD})

        assert client.delete("/api/v1/members/a%2Fb@acme.test").status_code == 200
        assert _member(runtime, "a/b@acme.test") is None


class TestResetPassword:
    def test_a_new_random_password_shown_once_replaces_the_old(
        self, client: TestClient, members: dict[str, str], runtime: Runtime,
        workspace: Any,
    ) -> None:
        response = client.post(f"/api/v1/members/{VIEWER}/password")

        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert (body["email"], body["role"], body["sessions_ended"]) == (VIEWER, "viewer", 0)
        password = body["password"]
        assert len(password) >= 20
        member = _member(runtime, VIEWER)
        assert member is not None
        assert auth_service.verify_password(member, password)
        assert not auth_service.verify_password(member, MEMBER_PASSWORD)
        [event] = _audit(runtime, "member.password_reset")
        assert event.detail == {"email": VIEWER, "sessions_ended": 0}
        assert password not in str(event.detail)
        again = client.post(f"/api/v1/members/{VIEWER}/password").json()["password"]
        assert again != password

    def test_their_keys_stay(
        self, app: Any, client: TestClient, members: dict[str, str], runtime: Runtime,
        workspace: Any,
    ) -> None:
        theirs = _key_made_by(runtime, workspace.id, VIEWER, "viewer")

        assert client.post(f"/api/v1/members/{VIEWER}/password").status_code == 200
        assert _status_with(app, theirs) == 200

    def test_an_unknown_member_is_404(self, client: TestClient) -> None:
        response = client.post("/api/v1/members/nobody@acme.test/password")

        assert response.status_code == 404
        assert "password" not in response.json()
