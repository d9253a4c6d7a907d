"""A change to a member reaches their browser on its next request: a removal or a password
reset ends the session (the next page goes to /login), a demotion makes the next request a
viewer's, and a session that also opens another workspace keeps that one. Signed in through
the sign-in form of a real server (uvicorn on 127.0.0.1), changed through the API."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
from sqlalchemy import select

from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import WebSession
from tests.support.pages import PASSWORD, add_member
from tests.web.conftest import ADMIN, VIEWER

if TYPE_CHECKING:
    from tests.conftest import WorkspaceHandle

_LOGIN_TOKEN = re.compile(r'name="login_token" value="([^"]+)"')
_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


@pytest.fixture
def browsers(live_url: str) -> Iterator[list[httpx.Client]]:
    opened: list[httpx.Client] = []
    yield opened
    for browser in opened:
        browser.close()


@pytest.fixture
def admin_api(live_url: str, workspace: WorkspaceHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_url, headers=workspace.headers) as api:
        yield api


def sign_in(live_url: str, browsers: list[httpx.Client], email: str,
            password: str = PASSWORD) -> httpx.Client:
    browser = httpx.Client(base_url=live_url, follow_redirects=False)
    browsers.append(browser)
    form = browser.get("/login")
    token = _LOGIN_TOKEN.search(form.text)
    assert token, "the sign-in form carries no login_token"
    answer = browser.post("/login", data={"email": email, "password": password,
                                          "login_token": token.group(1), "next": "/settings"})
    assert (answer.status_code, answer.headers["location"]) == (303, "/settings"), answer.text
    assert browser.get("/settings").status_code == 200
    return browser


def refused(browser: httpx.Client) -> bool:
    answer = browser.get("/settings/members")
    return (answer.status_code == 303
            and answer.headers["location"] == "/login?next=%2Fsettings%2Fmembers")


class TestTheNextRequest:
    def test_a_removed_member_is_signed_out_at_once(
        self, live_url: str, browsers: list[httpx.Client], admin_api: httpx.Client,
        members: dict[str, str], runtime: Runtime,
    ) -> None:
        browser = sign_in(live_url, browsers, VIEWER)
        cookie = browser.cookies["rf_session"]

        removed = admin_api.delete(f"/api/v1/members/{VIEWER}")

        assert removed.status_code == 200, removed.text
        assert removed.json()["sessions_ended"] == 1
        assert refused(browser)
        replay = httpx.Client(base_url=live_url, cookies={"rf_session": cookie})
        browsers.append(replay)
        assert refused(replay)
        with session_scope(runtime.sessions) as session:
            assert session.scalars(select(WebSession)).all() == []

    def test_a_password_reset_signs_them_out_and_the_new_password_works(
        self, live_url: str, browsers: list[httpx.Client], admin_api: httpx.Client,
        members: dict[str, str],
    ) -> None:
        browser = sign_in(live_url, browsers, VIEWER)

        reset = admin_api.post(f"/api/v1/members/{VIEWER}/password")

        assert reset.status_code == 200, reset.text
        assert refused(browser)
        sign_in(live_url, browsers, VIEWER, reset.json()["password"])

    def test_a_demoted_admin_is_a_viewer_on_the_next_request(
        self, live_url: str, browsers: list[httpx.Client], admin_api: httpx.Client,
        members: dict[str, str],
    ) -> None:
        admin_api.patch(f"/api/v1/members/{members['operator']}", json={"role": "admin"})
        browser = sign_in(live_url, browsers, ADMIN)
        assert browser.get("/settings/keys").status_code == 200
        page = browser.get("/settings/members").text
        csrf = _CSRF.search(page)
        assert csrf
        assert 'action="/settings/members"' in page

        demoted = admin_api.patch(f"/api/v1/members/{ADMIN}", json={"role": "viewer"})

        assert demoted.status_code == 200, demoted.text
        assert browser.get("/settings/keys").status_code == 403
        page = browser.get("/settings/members").text
        assert 'action="/settings/members"' not in page
        forged = browser.post("/settings/members", data={
            "csrf_token": csrf.group(1), "email": "x@acme.test", "role": "admin",
            "password": "long enough"})
        assert forged.status_code == 403
        assert "x@acme.test" not in admin_api.get("/api/v1/members").text


class TestOneSignInManyWorkspaces:
    def test_removal_from_one_keeps_the_others(
        self, live_url: str, browsers: list[httpx.Client], admin_api: httpx.Client,
        runtime: Runtime, workspace: WorkspaceHandle, other_workspace: WorkspaceHandle,
    ) -> None:
        add_member(runtime, workspace.id, "both@example.com", "viewer")
        add_member(runtime, other_workspace.id, "both@example.com", "viewer")
        browser = sign_in(live_url, browsers, "both@example.com")
        assert '<option value="acme" selected>' in browser.get("/settings").text

        assert admin_api.delete("/api/v1/members/both@example.com").status_code == 200

        page = browser.get("/settings")
        assert page.status_code == 200
        assert 'id="workspace-switch"' not in page.text  # one workspace left: no switcher
        assert "globex" in page.text
        assert "acme" not in browser.get("/settings/members").text
        with session_scope(runtime.sessions) as session:
            [row] = session.scalars(select(WebSession)).all()
            assert len(row.member_ids["ids"]) == 1
