"""Settings pages: providers, secrets, API keys, members and the audit log, by role."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response

from relayflow.services import audit as audit_service
from relayflow.services import auth as auth_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.repositories import secret as secret_repo
from tests.conftest import WorkspaceHandle
from tests.support.flows import set_secret
from tests.support.pages import csrf_token, sign_in
from tests.web.conftest import ADMIN, OPERATOR, VIEWER

CANARY = "canary-S3cr3t-value-9d2e"
PAGES = ["/settings", "/settings/providers", "/settings/secrets", "/settings/members",
         "/settings/audit"]
ADMIN_PAGES = [*PAGES, "/settings/keys"]
SMTP_FORM = {"type": "smtp", "smtp_host": "smtp.example.com", "smtp_port": "587",
             "smtp_tls": "starttls", "smtp_username": "ops", "smtp_password_secret": "SMTP_PASS",
             "smtp_from": "ops@example.com", "smtp_events_secret": "", "smtp_timeout": "20",
             "smtp_ca_file": "", "http_url": "", "http_body": "{not json"}
SMTP_STORED = {"type": "smtp", "host": "smtp.example.com", "port": 587, "tls": "starttls",
               "username": "ops", "password_secret": "SMTP_PASS", "from": "ops@example.com",
               "timeout": 20.0, "ca_file": None, "events_secret": None}
_NEW_KEY = re.compile(r'id="new-key"[^>]*value="([^"]+)"')


def post(client: TestClient, path: str, data: dict[str, str], *, csrf: bool = True) -> Response:
    form = {**data, "csrf_token": csrf_token(client)} if csrf else data
    return client.post(path, data=form, follow_redirects=False)


def html_of_every_page(client: TestClient, pages: list[str] = ADMIN_PAGES) -> str:
    answers = [client.get(path) for path in pages]
    assert [a.status_code for a in answers] == [200] * len(pages)
    return "\n".join(a.text for a in answers)


def secret_value(runtime: Runtime, workspace_id: uuid.UUID, name: str) -> str | None:
    with session_scope(runtime.sessions) as session:
        row = secret_repo.get(session, workspace_id, name)
        return runtime.cipher.decrypt(row.ciphertext) if row else None


def key_rows(runtime: Runtime, workspace_id: uuid.UUID) -> list[tuple[str, bool]]:
    with session_scope(runtime.sessions) as session:
        return [(k.prefix, k.revoked_at is not None)
                for k in auth_service.list_api_keys(session, workspace_id=workspace_id)]


def audit_actions(runtime: Runtime, workspace_id: uuid.UUID) -> list[str]:
    with session_scope(runtime.sessions) as session:
        page = audit_service.list_page(session, workspace_id=workspace_id, limit=200)
        return [e.action for e in page.events if e.action != "member.login"]


def new_key(response: Response) -> str:
    found = _NEW_KEY.search(response.text)
    assert found, "the new key is not on the page"
    return found.group(1)


class TestSecrets:
    def test_a_set_secret_is_stored_encrypted_and_its_value_is_never_shown(
        self, page_client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        response = post(page_client, "/settings/secrets",
                        {"name": "SMTP_PASS", "value": CANARY})

        assert response.status_code == 303
        assert CANARY not in response.headers["location"]
        assert secret_value(runtime, workspace.id, "SMTP_PASS") == CANARY
        landed = page_client.get(response.headers["location"])
        assert "Saved secret SMTP_PASS" in landed.text
        assert 'data-secret="SMTP_PASS"' in landed.text
        assert CANARY not in landed.text
        assert CANARY not in html_of_every_page(page_client)

    def test_replacing_keeps_one_secret_with_the_new_value(
        self, operator_page_client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        set_secret(runtime, workspace.id, "TOKEN", "old-value")

        response = post(operator_page_client, "/settings/secrets",
                        {"name": "TOKEN", "value": CANARY})

        assert response.status_code == 303
        assert secret_value(runtime, workspace.id, "TOKEN") == CANARY
        assert operator_page_client.get("/settings/secrets").text.count('data-secret=') == 1

    def test_an_invalid_name_is_422_without_echoing_the_value(
        self, page_client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        response = post(page_client, "/settings/secrets", {"name": "1-bad", "value": CANARY})

        assert response.status_code == 422
        assert "a secret name is letters, digits and &#39;_&#39;" in response.text
        assert CANARY not in response.text
        assert secret_value(runtime, workspace.id, "1-bad") is None

    def test_delete_removes_it(
        self, page_client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        set_secret(runtime, workspace.id, "OLD", CANARY)
        assert 'action="/settings/secrets/OLD/delete"' in page_client.get("/settings/secrets").text

        response = post(page_client, "/settings/secrets/OLD/delete", {})

        assert response.status_code == 303
        assert secret_value(runtime, workspace.id, "OLD") is None
        assert post(page_client, "/settings/secrets/OLD/delete", {}).status_code == 404

    def test_viewer_sees_names_but_no_form_and_cannot_post(
        self, viewer_page_client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        set_secret(runtime, workspace.id, "KEEP", CANARY)
        page = viewer_page_client.get("/settings/secrets")
        assert 'data-secret="KEEP"' in page.text
        assert 'action="/settings/secrets' not in page.text

        assert post(viewer_page_client, "/settings/secrets",
                    {"name": "NEW", "value": "x"}).status_code == 403
        assert post(viewer_page_client, "/settings/secrets/KEEP/delete", {}).status_code == 403
        assert secret_value(runtime, workspace.id, "NEW") is None
        assert secret_value(runtime, workspace.id, "KEEP") == CANARY


class TestProviders:
    @pytest.fixture(autouse=True)
    def _secret(self, runtime: Runtime, workspace: WorkspaceHandle) -> None:
        set_secret(runtime, workspace.id, "SMTP_PASS", CANARY)

    def test_no_provider_is_the_default_outbox(self, viewer_page_client: TestClient) -> None:
        page = viewer_page_client.get("/settings/providers")
        assert page.text.count("outbox (default)") == 2

    def test_smtp_form_saves_what_the_api_then_shows(
        self, page_client: TestClient, client: TestClient, runtime: Runtime,
        workspace: WorkspaceHandle,
    ) -> None:
        # The http fields (even an invalid body) are ignored: the type is smtp.
        response = post(page_client, "/settings/providers/email", SMTP_FORM)

        assert response.status_code == 303, response.text
        assert client.get("/api/v1/providers/email").json() == SMTP_STORED
        page = page_client.get(response.headers["location"])
        assert "Saved the email provider" in page.text
        assert "<code>SMTP_PASS</code>" in page.text
        assert '<option value="SMTP_PASS" selected>SMTP_PASS</option>' in page.text
        assert CANARY not in html_of_every_page(page_client)
        assert "provider.set" in audit_actions(runtime, workspace.id)

    def test_http_for_sms_with_a_json_body(
        self, page_client: TestClient, client: TestClient
    ) -> None:
        response = post(page_client, "/settings/providers/sms", {
            "type": "http", "http_url": "https://sms.example.com/m", "http_method": "PUT",
            "http_auth_header_secret": "SMTP_PASS", "http_auth_header": "X-Key",
            "http_auth_scheme": "", "http_body": '{"number": "{{ to }}"}',
            "http_message_id_path": "", "http_timeout": "5"})

        assert response.status_code == 303, response.text
        assert client.get("/api/v1/providers/sms").json() == {
            "type": "http", "url": "https://sms.example.com/m", "method": "PUT",
            "auth_header_secret": "SMTP_PASS", "auth_header": "X-Key", "auth_scheme": None,
            "body": {"number": "{{ to }}"}, "message_id_path": None, "timeout": 5.0,
            "events_secret": None}

    @pytest.mark.parametrize(("change", "problems"), [
        ({"smtp_port": "0", "smtp_host": ""},
         ["host is required", "port must be a number from 1 to 65535"]),
        ({"smtp_password_secret": "NOPE"}, ["unknown secret &#39;NOPE&#39;"]),
        ({"smtp_username": "ops", "smtp_password_secret": ""},
         ["password_secret is required with a username"]),
    ])
    def test_an_invalid_config_is_422_with_every_problem_and_nothing_saved(
        self, page_client: TestClient, client: TestClient, change: dict[str, str],
        problems: list[str],
    ) -> None:
        response = post(page_client, "/settings/providers/email", {**SMTP_FORM, **change})

        assert response.status_code == 422
        assert "Nothing was saved" in response.text
        for problem in problems:
            assert problem in response.text
        assert 'value="smtp.example.com"' in response.text or "host is required" in problems
        assert client.get("/api/v1/providers/email").json() == {"type": "outbox"}

    def test_a_body_that_is_not_json_is_422(
        self, page_client: TestClient, client: TestClient
    ) -> None:
        response = post(page_client, "/settings/providers/sms", {
            "type": "http", "http_url": "https://sms.example.com/m", "http_body": "{oops"})

        assert response.status_code == 422
        assert "body is not valid JSON" in response.text
        assert "body must be an object" not in response.text
        assert client.get("/api/v1/providers/sms").json() == {"type": "outbox"}

    def test_operator_and_viewer_see_no_form_and_are_refused(
        self, operator_page_client: TestClient, viewer_page_client: TestClient,
        client: TestClient,
    ) -> None:
        for someone in (operator_page_client, viewer_page_client):
            assert 'action="/settings/providers' not in someone.get("/settings/providers").text
            assert post(someone, "/settings/providers/email", SMTP_FORM).status_code == 403
        assert client.get("/api/v1/providers/email").json() == {"type": "outbox"}


class TestApiKeys:
    def test_a_new_key_is_shown_once_works_and_stops_working_when_revoked(
        self, page_client: TestClient, app: FastAPI, runtime: Runtime,
        workspace: WorkspaceHandle,
    ) -> None:
        response = post(page_client, "/settings/keys", {"name": "CI deploys",
                                                        "role": "operator"})

        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        assert "location" not in response.headers
        key = new_key(response)
        prefix = key.split(".", 1)[0]
        assert 'data-copy="new-key"' in response.text
        assert "cannot be shown again" in response.text
        with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as api:
            assert api.get("/api/v1/runs").status_code == 200
            listed = page_client.get("/settings/keys").text
            assert f'data-key="{prefix}"' in listed
            assert key not in html_of_every_page(page_client)
            assert key.split(".", 1)[1] not in html_of_every_page(page_client)

            revoked = post(page_client, f"/settings/keys/{prefix}/revoke", {})

            assert revoked.status_code == 303
            assert api.get("/api/v1/runs").status_code == 401
        assert (prefix, True) in key_rows(runtime, workspace.id)
        assert "Revoked" in page_client.get("/settings/keys").text
        assert post(page_client, f"/settings/keys/{prefix}/revoke", {}).status_code == 409

    def test_an_unknown_role_is_422_and_creates_nothing(
        self, page_client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        before = key_rows(runtime, workspace.id)
        response = post(page_client, "/settings/keys", {"name": "x", "role": "owner"})
        assert response.status_code == 422
        assert "role must be one of admin, operator, viewer" in response.text
        assert key_rows(runtime, workspace.id) == before

    def test_only_admins_see_or_change_keys(
        self, operator_page_client: TestClient, viewer_page_client: TestClient,
        runtime: Runtime, workspace: WorkspaceHandle,
    ) -> None:
        before = key_rows(runtime, workspace.id)
        prefix = before[0][0]
        for someone in (operator_page_client, viewer_page_client):
            assert someone.get("/settings/keys").status_code == 403
            overview = someone.get("/settings").text
            assert 'href="/settings/keys"' not in overview
            assert "Only admins can see, create and revoke API keys." in overview
            assert post(someone, "/settings/keys", {"role": "admin"}).status_code == 403
            assert post(someone, f"/settings/keys/{prefix}/revoke", {}).status_code == 403
        assert key_rows(runtime, workspace.id) == before


class TestMembers:
    def test_an_added_member_can_sign_in(
        self, page_client: TestClient, app: FastAPI, runtime: Runtime,
        workspace: WorkspaceHandle,
    ) -> None:
        response = post(page_client, "/settings/members", {
            "email": "Grace@Acme.test", "role": "operator", "password": "a-long-passphrase"})

        assert response.status_code == 303
        page = page_client.get(response.headers["location"])
        assert 'data-member="grace@acme.test"' in page.text
        assert "a-long-passphrase" not in page.text
        with TestClient(app) as grace:
            sign_in(grace, "grace@acme.test", "a-long-passphrase")
            assert grace.get("/settings").status_code == 200
        assert "member.add" in audit_actions(runtime, workspace.id)

    @pytest.mark.parametrize(("data", "status", "message"), [
        ({"email": "x@acme.test", "role": "viewer", "password": "short"}, 422,
         "password must be at least 8 characters"),
        ({"email": VIEWER, "role": "viewer", "password": "long enough"}, 409,
         "is already a member"),
        ({"email": "x@acme.test", "role": "root", "password": "long enough"}, 422,
         "role must be one of"),
    ])
    def test_refused_without_adding_anyone(
        self, page_client: TestClient, data: dict[str, str], status: int, message: str
    ) -> None:
        response = post(page_client, "/settings/members", data)
        assert response.status_code == status
        assert message in response.text
        assert data["password"] not in response.text
        assert 'data-member="x@acme.test"' not in page_client.get("/settings/members").text

    def test_others_see_the_list_but_cannot_add(
        self, operator_page_client: TestClient, viewer_page_client: TestClient
    ) -> None:
        for someone in (operator_page_client, viewer_page_client):
            page = someone.get("/settings/members").text
            assert f'data-member="{ADMIN}"' in page
            assert 'action="/settings/members"' not in page
            assert post(someone, "/settings/members", {
                "email": "sneaky@acme.test", "role": "admin",
                "password": "long enough"}).status_code == 403
        page = operator_page_client.get("/settings/members").text
        assert 'data-member="sneaky@acme.test"' not in page


class TestAuditLog:
    def test_lists_the_changes_made_here_newest_first(
        self, page_client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        set_secret(runtime, workspace.id, "SMTP_PASS", CANARY)
        post(page_client, "/settings/secrets", {"name": "API_TOKEN", "value": CANARY})
        post(page_client, "/settings/providers/email", SMTP_FORM)
        post(page_client, "/settings/keys", {"name": "ci", "role": "viewer"})
        post(page_client, "/settings/members", {"email": "new@acme.test", "role": "viewer",
                                                "password": "long enough"})

        page = page_client.get("/settings/audit").text

        shown = re.findall(r'<tr data-action="([^"]+)"', page)
        assert shown[:4] == ["member.add", "key.create", "provider.set", "secret.set"]
        assert page.count(f'<td class="mono small">{ADMIN}</td>') >= 4
        assert CANARY not in page
        filtered = page_client.get("/settings/audit", params={"action": "key.create"}).text
        assert set(re.findall(r'<tr data-action="([^"]+)"', filtered)) == {"key.create"}

    def test_pages_by_keyset_without_repeats(
        self, viewer_page_client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        start = datetime.now(UTC) - timedelta(days=1)
        with session_scope(runtime.sessions) as session:
            for i in range(60):
                audit_service.record(session, workspace_id=workspace.id, actor="test",
                                     action="secret.set", target_type="secret",
                                     target_id=f"S{i:02d}", now=start + timedelta(seconds=i))
        targets = re.compile(r'>(S\d\d)</a>')
        first = viewer_page_client.get("/settings/audit?action=secret.set").text
        older = re.search(r'href="([^"]+)" rel="next"', first)
        assert older
        second = viewer_page_client.get(older.group(1).replace("&amp;", "&")).text

        assert targets.findall(first) == [f"S{i:02d}" for i in range(59, 9, -1)]
        assert targets.findall(second) == [f"S{i:02d}" for i in range(9, -1, -1)]
        assert 'rel="next"' not in second


class TestRolesAndCsrf:
    def test_viewer_gets_no_forms_and_every_forged_post_is_refused(
        self, viewer_page_client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        set_secret(runtime, workspace.id, "KEEP", CANARY)
        html = html_of_every_page(viewer_page_client, PAGES)
        assert 'method="post" action="/settings' not in html
        assert "data-dialog=" not in html
        before = (key_rows(runtime, workspace.id), audit_actions(runtime, workspace.id))
        prefix = before[0][0][0]
        forged: list[tuple[str, dict[str, Any]]] = [
            ("/settings/secrets", {"name": "NEW", "value": "v"}),
            ("/settings/secrets/KEEP/delete", {}),
            ("/settings/providers/email", SMTP_FORM),
            ("/settings/keys", {"name": "x", "role": "admin"}),
            (f"/settings/keys/{prefix}/revoke", {}),
            ("/settings/members", {"email": "m@acme.test", "role": "admin",
                                   "password": "long enough"}),
        ]
        for path, data in forged:
            assert post(viewer_page_client, path, data).status_code == 403, path
        assert (key_rows(runtime, workspace.id), audit_actions(runtime, workspace.id)) == before
        assert secret_value(runtime, workspace.id, "KEEP") == CANARY

    def test_operator_sees_only_the_secret_forms(self, operator_page_client: TestClient) -> None:
        html = html_of_every_page(operator_page_client, PAGES)
        assert set(re.findall(r'method="post" action="(/settings[^"]*)"', html)) == {
            "/settings/secrets"}

    def test_every_form_carries_the_session_token(
        self, page_client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        set_secret(runtime, workspace.id, "SOME", CANARY)
        html = html_of_every_page(page_client)
        tokens = re.findall(r'name="csrf_token" value="([^"]*)"', html)
        forms = re.findall(r'<form method="post" action="/settings', html)
        assert len(forms) >= 7
        assert len(tokens) >= len(forms)
        assert set(tokens) == {csrf_token(page_client)}

    def test_a_post_without_the_csrf_token_is_refused(
        self, page_client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        response = post(page_client, "/settings/secrets", {"name": "X", "value": "v"},
                        csrf=False)
        assert response.status_code == 403
        assert secret_value(runtime, workspace.id, "X") is None
        forged = post(page_client, "/settings/secrets",
                      {"name": "X", "value": "v", "csrf_token": "not-the-token"}, csrf=False)
        assert forged.status_code == 403


class TestIsolation:
    def test_an_outsider_sees_and_changes_only_their_own_workspace(
        self, outsider_page_client: TestClient, page_client: TestClient, runtime: Runtime,
        workspace: WorkspaceHandle,
    ) -> None:
        set_secret(runtime, workspace.id, "ACME_ONLY", CANARY)
        post(page_client, "/settings/keys", {"name": "acme-ci", "role": "viewer"})
        acme_prefix = key_rows(runtime, workspace.id)[-1][0]

        html = html_of_every_page(outsider_page_client)

        for acme_thing in ("ACME_ONLY", acme_prefix, "acme-ci", ADMIN, OPERATOR, VIEWER):
            assert acme_thing not in html
        assert post(outsider_page_client, f"/settings/keys/{acme_prefix}/revoke",
                    {}).status_code == 404
        assert post(outsider_page_client, "/settings/secrets/ACME_ONLY/delete",
                    {}).status_code == 404
        assert (acme_prefix, False) in key_rows(runtime, workspace.id)
        assert secret_value(runtime, workspace.id, "ACME_ONLY") == CANARY
