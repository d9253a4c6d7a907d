"""Settings → Members for admins: change a role, remove (behind a confirmation dialog) and
reset a password (the new one shown once), as /api/v1/members does; refused for the rest."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select

from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import AuditEvent, Member
from tests.conftest import WorkspaceHandle
from tests.support.pages import csrf_token, sign_in
from tests.web.conftest import ADMIN, OPERATOR, VIEWER

_NEW_PASSWORD = re.compile(r'id="new-password"[^>]*value="([^"]+)"')


def post(client: TestClient, path: str, data: dict[str, str] | None = None) -> Response:
    form = {**(data or {}), "csrf_token": csrf_token(client)}
    return client.post(path, data=form, follow_redirects=False)


def roles(runtime: Runtime) -> dict[str, str]:
    with session_scope(runtime.sessions) as session:
        return {m.email: m.role for m in session.scalars(select(Member))}


def audit(runtime: Runtime) -> list[tuple[str, str, dict[str, Any]]]:
    with session_scope(runtime.sessions) as session:
        return [(e.action, e.actor, e.detail) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.action != "member.login")
            .order_by(AuditEvent.at))]


class TestTheList:
    def test_an_admin_gets_a_role_form_and_dialogs_for_each_but_the_last_admin(
        self, page_client: TestClient
    ) -> None:
        page = page_client.get("/settings/members").text

        forms = re.findall(r'<form method="post" action="(/settings[^"]+)"', page)
        assert sorted(forms) == sorted([
            "/settings/members",
            *(f"/settings/members/{e.replace('@', '%40')}/{a}"
              for e in (OPERATOR, VIEWER) for a in ("role", "password", "remove")),
            f"/settings/members/{ADMIN.replace('@', '%40')}/password"])
        # Removing asks first: the form sits in a closed dialog behind a button.
        assert re.search(r'data-dialog="remove-2"[^<]*<span class="visually-hidden"> '
                         + re.escape(OPERATOR), page)
        assert '<dialog id="remove-2"' in page
        assert "the only admin" in page
        assert "<script>" not in page  # the CSP allows no inline script or style
        assert "style=" not in page

    @pytest.mark.parametrize("who", ["operator_page_client", "viewer_page_client"])
    def test_others_see_the_list_without_any_form(
        self, request: pytest.FixtureRequest, who: str
    ) -> None:
        page = request.getfixturevalue(who).get("/settings/members").text

        assert f'data-member="{OPERATOR}"' in page
        assert '<form method="post"' not in page.split('id="members"')[1]
        assert "data-dialog=" not in page


class TestChangeRole:
    def test_changes_the_role_and_says_so(
        self, page_client: TestClient, runtime: Runtime
    ) -> None:
        response = post(page_client, f"/settings/members/{VIEWER}/role", {"role": "operator"})

        assert response.status_code == 303
        page = page_client.get(response.headers["location"]).text
        assert f"Changed the role of {VIEWER}." in page
        assert roles(runtime)[VIEWER] == "operator"
        assert audit(runtime)[-1] == ("member.role", ADMIN, {
            "email": VIEWER, "from": "viewer", "to": "operator", "revoked_keys": []})

    @pytest.mark.parametrize(("role", "status", "message"), [
        ("owner", 422, "role must be one of admin, operator, viewer"),
        ("viewer", 409, f"{ADMIN} is the last admin of this workspace"),
    ])
    def test_refused_with_the_reason_on_the_page(
        self, page_client: TestClient, runtime: Runtime, role: str, status: int,
        message: str,
    ) -> None:
        before = roles(runtime)

        response = post(page_client, f"/settings/members/{ADMIN}/role", {"role": role})

        assert response.status_code == status
        assert 'id="member-list-error"' in response.text
        assert message in response.text
        assert roles(runtime) == before


class TestRemove:
    def test_removes_them_and_ends_their_session(
        self, app: FastAPI, page_client: TestClient, runtime: Runtime
    ) -> None:
        with TestClient(app) as theirs:
            sign_in(theirs, OPERATOR)

            response = post(page_client, f"/settings/members/{OPERATOR}/remove")

            assert response.status_code == 303
            assert theirs.get("/settings", follow_redirects=False).status_code == 303
        page = page_client.get(response.headers["location"]).text
        assert f"Removed {OPERATOR}: their sessions in this workspace have ended." in page
        assert f'data-member="{OPERATOR}"' not in page
        assert OPERATOR not in roles(runtime)
        assert audit(runtime)[-1][:2] == ("member.remove", ADMIN)

    def test_the_last_admin_stays(self, page_client: TestClient, runtime: Runtime) -> None:
        response = post(page_client, f"/settings/members/{ADMIN}/remove")

        assert response.status_code == 409
        assert "is the last admin of this workspace" in response.text
        assert roles(runtime)[ADMIN] == "admin"

    def test_an_unknown_member_is_404(self, page_client: TestClient) -> None:
        assert post(page_client, "/settings/members/nobody@acme.test/remove").status_code == 404


class TestResetPassword:
    def test_the_new_password_is_shown_once_and_opens_the_workspace(
        self, app: FastAPI, page_client: TestClient, runtime: Runtime
    ) -> None:
        response = post(page_client, f"/settings/members/{VIEWER}/password")

        assert response.status_code == 200
        assert (response.headers["cache-control"], response.headers["referrer-policy"]) == (
            "no-store", "no-referrer")
        found = _NEW_PASSWORD.search(response.text)
        assert found, "the new password is not on the page"
        password = found.group(1)
        assert f"New password for {VIEWER}" in response.text
        assert password not in page_client.get("/settings/members").text
        assert password not in page_client.get("/settings/audit").text
        assert audit(runtime)[-1] == ("member.password_reset", ADMIN,
                                      {"email": VIEWER, "sessions_ended": 0})
        with TestClient(app) as theirs:
            sign_in(theirs, VIEWER, password)


class TestRefused:
    def test_non_admins_and_forms_without_the_token_change_nothing(
        self, operator_page_client: TestClient, viewer_page_client: TestClient,
        page_client: TestClient, runtime: Runtime,
    ) -> None:
        before = (roles(runtime), audit(runtime))

        for action in ("role", "remove", "password"):
            path = f"/settings/members/{VIEWER}/{action}"
            for someone in (operator_page_client, viewer_page_client):
                assert post(someone, path, {"role": "admin"}).status_code == 403, action
            forged = page_client.post(path, data={"role": "admin"}, follow_redirects=False)
            assert forged.status_code == 403, action

        assert (roles(runtime), audit(runtime)) == before

    def test_an_outsider_cannot_reach_another_workspace_member(
        self, outsider_page_client: TestClient, page_client: TestClient,
        runtime: Runtime, workspace: WorkspaceHandle,
    ) -> None:
        before = roles(runtime)

        for action in ("role", "remove", "password"):
            response = post(outsider_page_client, f"/settings/members/{VIEWER}/{action}",
                            {"role": "admin"})
            assert response.status_code == 404, action

        assert roles(runtime) == before
