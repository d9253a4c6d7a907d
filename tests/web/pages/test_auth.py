"""Signing in: sessions, the sign-in form's own CSRF token, rate limits, workspaces."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from relayflow.services import login as login_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import AuditEvent, Member, WebSession
from tests.support.pages import PASSWORD, add_member, sign_in
from tests.web.conftest import ADMIN, OUTSIDER, VIEWER

TOKEN = re.compile(r'name="login_token" value="([^"]+)"')


def submit(client: TestClient, email: str, password: str, *, next_path: str = "/runs",
           token: str | None = None) -> object:
    form = client.get("/login")
    found = TOKEN.search(form.text)
    assert found
    return client.post("/login", data={
        "email": email, "password": password, "next": next_path,
        "login_token": found.group(1) if token is None else token,
    }, follow_redirects=False)


class TestSignInForm:
    def test_pages_redirect_to_sign_in_keeping_where_you_were_going(self, app: FastAPI):
        with TestClient(app) as client:
            response = client.get("/runs?status=FAILED", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=%2Fruns%3Fstatus%3DFAILED"

    def test_success_sets_an_httponly_lax_cookie_and_goes_to_next(self, app, members):
        with TestClient(app) as client:
            response = submit(client, ADMIN, PASSWORD, next_path="/workflows")
        assert response.status_code == 303
        assert response.headers["location"] == "/workflows"
        cookie = next(c for c in response.headers.get_list("set-cookie")
                      if c.startswith("rf_session="))
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        assert "Secure" not in cookie  # plain http on loopback

    def test_cookie_is_secure_when_the_public_url_is_https(self, settings, runtime, members):
        from relayflow.web.app import create_app

        secure = create_app(settings.model_copy(update={"public_url": "https://relay.example"}),
                            runtime=runtime)
        with TestClient(secure, base_url="https://testserver") as client:
            response = submit(client, ADMIN, PASSWORD)
        cookie = next(c for c in response.headers.get_list("set-cookie")
                      if c.startswith("rf_session="))
        assert "Secure" in cookie

    @pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/",
                                        "/\\evil.example", "javascript:alert(1)"])
    def test_next_never_leaves_the_site(self, app, members, target):
        with TestClient(app) as client:
            response = submit(client, ADMIN, PASSWORD, next_path=target)
        assert response.headers["location"] == "/runs"

    def test_wrong_password_and_unknown_email_get_the_same_answer(self, app, members):
        with TestClient(app) as client:
            wrong = submit(client, ADMIN, "not the password")
            unknown = submit(client, "nobody@acme.test", PASSWORD)
        assert wrong.status_code == unknown.status_code == 401
        assert "Wrong email or password." in wrong.text
        assert "Wrong email or password." in unknown.text
        assert "rf_session" not in wrong.headers.get("set-cookie", "")

    def test_a_sign_in_post_without_the_form_token_is_refused(self, app, members):
        with TestClient(app) as client:
            response = submit(client, ADMIN, PASSWORD, token="forged")
        assert response.status_code == 403
        assert "rf_session" not in client.cookies

    def test_the_password_is_never_echoed(self, app, members):
        with TestClient(app) as client:
            response = submit(client, ADMIN, "hunter2-secret-guess")
        assert "hunter2-secret-guess" not in response.text


class TestRateLimit:
    def test_five_failures_lock_the_email_with_retry_after(self, app, members, runtime):
        with TestClient(app) as client:
            for _ in range(login_service.MAX_FAILURES_PER_EMAIL):
                assert submit(client, ADMIN, "wrong").status_code == 401
            locked = submit(client, ADMIN, PASSWORD)  # even the right password waits
        assert locked.status_code == 429
        assert 0 < int(locked.headers["Retry-After"]) <= 15 * 60 + 1
        assert "Too many failed sign-ins" in locked.text

    def test_the_lock_lifts_when_the_failures_leave_the_window(self, app, members, runtime):
        with TestClient(app) as client:
            for _ in range(login_service.MAX_FAILURES_PER_EMAIL):
                submit(client, ADMIN, "wrong")
            real = runtime.clock
            runtime.clock = lambda: real() + timedelta(minutes=16)  # type: ignore[method-assign]
            try:
                assert submit(client, ADMIN, PASSWORD).status_code == 303
            finally:
                runtime.clock = real  # type: ignore[method-assign]

    def test_many_emails_from_one_address_are_limited_too(self, app, members):
        with TestClient(app) as client:
            for i in range(login_service.MAX_FAILURES_PER_ADDRESS):
                submit(client, f"guess{i}@acme.test", "wrong")
            assert submit(client, VIEWER, PASSWORD).status_code == 429

    def test_a_success_clears_the_email_count(self, app, members):
        with TestClient(app) as client:
            for _ in range(login_service.MAX_FAILURES_PER_EMAIL - 1):
                submit(client, ADMIN, "wrong")
            assert submit(client, ADMIN, PASSWORD).status_code == 303
            for _ in range(login_service.MAX_FAILURES_PER_EMAIL - 1):
                assert submit(client, ADMIN, "wrong").status_code == 401


class TestSession:
    def test_sign_out_ends_the_session_on_the_server(self, app, members, runtime):
        with TestClient(app) as client:
            sign_in(client, ADMIN)
            stolen = client.cookies["rf_session"]
            page = client.get("/settings")
            csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
            assert csrf
            client.post("/logout", data={"csrf_token": csrf.group(1)})
        with TestClient(app, cookies={"rf_session": stolen}) as replay:
            assert replay.get("/settings", follow_redirects=False).status_code == 303
        with session_scope(runtime.sessions) as session:
            assert session.scalars(select(WebSession)).all() == []

    def test_sign_out_needs_the_csrf_token(self, app, members):
        with TestClient(app) as client:
            sign_in(client, ADMIN)
            assert client.post("/logout", data={}).status_code == 403
            assert client.get("/settings", follow_redirects=False).status_code != 303

    def test_an_expired_session_signs_you_out(self, app, members, runtime):
        with TestClient(app) as client:
            sign_in(client, ADMIN)
            real = runtime.clock
            later = real() + login_service.SESSION_LIFETIME + timedelta(seconds=1)
            runtime.clock = lambda: later  # type: ignore[method-assign]
            try:
                assert client.get("/settings", follow_redirects=False).status_code == 303
            finally:
                runtime.clock = real  # type: ignore[method-assign]

    def test_only_a_hash_of_the_token_is_stored(self, app, members, runtime):
        with TestClient(app) as client:
            sign_in(client, ADMIN)
            token = client.cookies["rf_session"]
        with session_scope(runtime.sessions) as session:
            stored = session.scalars(select(WebSession.id)).all()
        assert len(stored) == 1
        assert token not in stored[0]

    def test_a_removed_member_loses_access_at_once(self, app, members, runtime, workspace):
        with TestClient(app) as client:
            sign_in(client, VIEWER)
            with session_scope(runtime.sessions) as session:
                member = session.scalar(select(Member).where(Member.email == VIEWER))
                session.delete(member)
            assert client.get("/settings", follow_redirects=False).status_code == 303

    def test_sign_in_is_audited(self, app, members, runtime, workspace):
        with TestClient(app) as client:
            sign_in(client, ADMIN)
        with session_scope(runtime.sessions) as session:
            actions = session.scalars(select(AuditEvent.action).where(
                AuditEvent.workspace_id == workspace.id)).all()
        assert "member.login" in actions


class TestWorkspaceSwitcher:
    def test_a_member_of_two_workspaces_switches_between_them(
        self, app, runtime, workspace, other_workspace
    ):
        add_member(runtime, workspace.id, "both@example.com", "viewer")
        add_member(runtime, other_workspace.id, "both@example.com", "admin")
        with TestClient(app) as client:
            sign_in(client, "both@example.com")
            page = client.get("/settings")
            assert 'id="workspace-switch"' in page.text
            csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
            assert csrf
            assert 'role role-viewer' in page.text or "acme" in page.text
            switched = client.post("/workspace", data={"csrf_token": csrf.group(1),
                                                       "workspace": other_workspace.slug},
                                   follow_redirects=False)
            assert switched.status_code == 303
            after = client.get("/settings")
            assert '<option value="globex" selected>' in after.text

    def test_switching_to_a_workspace_you_are_not_in_is_404(self, app, members,
                                                            other_workspace):
        with TestClient(app) as client:
            sign_in(client, ADMIN)
            page = client.get("/settings")
            csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
            assert csrf
            response = client.post("/workspace", data={"csrf_token": csrf.group(1),
                                                       "workspace": other_workspace.slug})
            assert response.status_code == 404

    def test_a_password_only_opens_the_workspaces_it_matches(
        self, app, runtime, workspace, other_workspace
    ):
        add_member(runtime, workspace.id, "split@example.com", "admin", password=PASSWORD)
        add_member(runtime, other_workspace.id, "split@example.com", "admin",
                   password="another password")
        with TestClient(app) as client:
            sign_in(client, "split@example.com")
            page = client.get("/settings")
        assert 'id="workspace-switch"' not in page.text
        assert OUTSIDER not in page.text


class TestErrorPages:
    def test_unknown_page_is_an_html_404_and_api_stays_json(self, page_client):
        page = page_client.get("/nowhere")
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert "Page not found" in page.text
        api = page_client.get("/api/v1/nowhere")
        assert api.status_code == 404
        assert api.json()["error"]["code"] == "NotFound"

    def test_static_files_are_served_with_a_content_hash(self, page_client):
        page = page_client.get("/nowhere")
        href = re.search(r'href="(/static/app\.css\?v=[0-9a-f]{10})"', page.text)
        assert href
        assert page_client.get(href.group(1)).status_code == 200


def test_login_service_refuses_a_garbage_token(runtime: Runtime) -> None:
    with session_scope(runtime.sessions) as session:
        assert login_service.resolve(session, token="x" * 500,
                                     now=datetime.now(UTC)) is None
        assert login_service.resolve(session, token="nope", now=datetime.now(UTC)) is None
