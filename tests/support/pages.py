"""Signing in to the pages from tests: members, the sign-in form and the CSRF token."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from relayflow.services import auth as auth_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope

PASSWORD = "correct horse battery"
_TOKEN = re.compile(r'name="(?:login_token|csrf_token)" value="([^"]+)"')
_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def add_member(runtime: Runtime, workspace_id: uuid.UUID, email: str, role: str = "admin",
               password: str = PASSWORD) -> None:
    with session_scope(runtime.sessions) as session:
        auth_service.add_member(session, workspace_id=workspace_id, email=email, role=role,
                                password=password, now=datetime.now(UTC))


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> None:
    """Fill in the sign-in form like a browser would; fails the test if it is refused."""
    form = client.get("/login")
    token = _TOKEN.search(form.text)
    assert token, "the sign-in form carries no login_token"
    response = client.post("/login", data={"email": email, "password": password,
                                           "login_token": token.group(1), "next": "/runs"},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    assert "rf_session" in client.cookies


def csrf_token(client: TestClient, path: str = "/settings") -> str:
    """The session's CSRF token, read from a page the way a form would carry it."""
    page = client.get(path)
    found = _META.search(page.text)
    assert found, f"{path} carries no csrf-token meta tag"
    return found.group(1)
