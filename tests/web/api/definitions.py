"""Workflow definitions and small request helpers shared by the API tests."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient


def straight(key: str = "onboarding", *, body: str = "Hello {{ contact.email }}") -> dict[str, Any]:
    """trigger → check (CONDITION) → welcome (SEND_MESSAGE) → done (END)."""
    return {
        "key": key,
        "name": "Onboarding",
        "trigger": {"type": "manual"},
        "start": "check",
        "nodes": {
            "check": {"type": "CONDITION", "when": "(event.plan | default('free')) == 'pro'",
                      "then": "welcome", "else": "welcome"},
            "welcome": {"type": "SEND_MESSAGE", "channel": "email", "subject": "Welcome",
                        "body": body, "next": "done"},
            "done": {"type": "END"},
        },
    }


def rejecting(key: str = "rejecter") -> dict[str, Any]:
    """Fails at once with a rendered message."""
    return {
        "key": key,
        "trigger": {"type": "manual"},
        "start": "stop",
        "nodes": {"stop": {"type": "STOP_ERROR", "message": "Rejected: {{ event.reason }}"}},
    }


def waiting(key: str = "drip") -> dict[str, Any]:
    """Parks at a two-day WAIT."""
    return {
        "key": key,
        "trigger": {"type": "manual"},
        "start": "wait_2d",
        "nodes": {"wait_2d": {"type": "WAIT", "duration": "2d", "next": "done"},
                  "done": {"type": "END"}},
    }


def upstream_child(key: str = "child") -> dict[str, Any]:
    """Started by another workflow's TRIGGER_WORKFLOW node."""
    return {"key": key, "trigger": {"type": "upstream"}, "start": "done",
            "nodes": {"done": {"type": "END"}}}


def upstream_parent(key: str = "parent", *, child: str = "child") -> dict[str, Any]:
    """Starts a run of `child` for the same contact, then ends."""
    return {"key": key, "start": "start_child", "nodes": {
        "start_child": {"type": "TRIGGER_WORKFLOW", "workflow": child, "next": "done"},
        "done": {"type": "END"}}}


def webhook(key: str = "inbound") -> dict[str, Any]:
    return {
        "key": key,
        "trigger": {"type": "webhook", "contact": {"email": "{{ event.email }}"}},
        "start": "done",
        "nodes": {"done": {"type": "END"}},
    }


def create(client: TestClient, definition: dict[str, Any], *, activate: bool = True) -> None:
    response = client.post("/api/v1/workflows", json=definition)
    assert response.status_code in (200, 201), response.text
    if activate:
        response = client.post(f"/api/v1/workflows/{definition['key']}/activate")
        assert response.status_code == 200, response.text


def trigger(client: TestClient, key: str, **body: Any) -> str:
    body.setdefault("contact", {"email": "ada@example.com"})
    response = client.post(f"/api/v1/workflows/{key}/runs", json=body)
    assert response.status_code == 202, response.text
    run_id: str = response.json()["id"]
    return run_id
