"""Webhook workflows, signed requests, a live server and row counts for the /hooks tests."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import Contact, WorkflowRun
from tests.web.api.definitions import create

SECRET_NAME = "HOOK_SECRET"
SECRET_VALUE = "whsec-9f8e7d6c5b4a-never-shown"


def hook_definition(
    key: str = "inbound", *, contact: dict[str, str] | None = None,
    signing_secret: str | None = None,
) -> dict[str, Any]:
    """A webhook workflow that completes only if `event.kind` is "order"."""
    trigger: dict[str, Any] = {"type": "webhook"}
    if contact is not None:
        trigger["contact"] = contact
    if signing_secret is not None:
        trigger["signing_secret"] = signing_secret
    return {
        "key": key,
        "trigger": trigger,
        "start": "check",
        "nodes": {
            "check": {"type": "CONDITION", "when": "event.kind == 'order'",
                      "then": "done", "else": "reject"},
            "done": {"type": "END"},
            "reject": {"type": "STOP_ERROR", "message": "not an order: {{ event.kind }}"},
        },
    }


def install_hook(client: TestClient, definition: dict[str, Any], *,
                 activate: bool = True) -> str:
    """Create the workflow through the API; returns its webhook path (/hooks/<token>)."""
    create(client, definition, activate=activate)
    url = client.get(f"/api/v1/workflows/{definition['key']}").json()["webhook_url"]
    assert url is not None
    return "/hooks/" + url.rsplit("/hooks/", 1)[1]


def signature(body: bytes, *, t: int, secret: str = SECRET_VALUE) -> str:
    """Computed here independently of the service under test."""
    digest = hmac.new(secret.encode(), str(t).encode() + b"." + body, hashlib.sha256)
    return f"t={t},v1={digest.hexdigest()}"


def run_count(runtime: Runtime) -> int:
    with session_scope(runtime.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(WorkflowRun)) or 0)


def contacts(runtime: Runtime) -> list[Contact]:
    with session_scope(runtime.sessions) as session:
        return list(session.scalars(select(Contact)))
