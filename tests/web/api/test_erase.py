"""POST /api/v1/contacts/{id}/erase: a contact's personal data leaves every table, found by
the secret-canary scanner in none of them afterwards in any spelling, while its runs' and
messages' statuses and every count stay as they were."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from relayflow.services import unsubscribe as unsubscribe_service
from relayflow.services.runtime import Runtime
from relayflow.services.search import words
from relayflow.storage.db import session_scope
from relayflow.storage.models import Contact
from tests.services.test_secret_canary import Search, forms_of, index_words, search_database
from tests.support.worker import drain
from tests.web.api.definitions import create, trigger
from tests.web.hooks.conftest import install_hook

ADA = {"email": "ada.lovelace@example.com", "phone": "+14155550199", "external_id": "crm-7731"}
BOB = {"email": "bob.babbage@example.com"}


def _greeting() -> dict[str, Any]:
    """Sees the contact's address in a condition, and mails it in the body."""
    return {"key": "greet", "trigger": {"type": "manual"}, "start": "check", "nodes": {
        "check": {"type": "CONDITION", "when": "contact.email.endswith('example.com')",
                  "then": "mail", "else": "done"},
        "mail": {"type": "SEND_MESSAGE", "channel": "email", "subject": "Hi {{ contact.email }}",
                 "body": "Hello {{ contact.email }}, we call {{ contact.phone }}.",
                 "next": "done"},
        "done": {"type": "END"}}}


def _rejecting_hook() -> dict[str, Any]:
    """A webhook whose runs fail quoting the payload's address (a cause's sample, too)."""
    return {"key": "orders", "trigger": {"type": "webhook",
                                         "contact": {"email": "{{ event.email }}"}},
            "start": "stop", "nodes": {"stop": {"type": "STOP_ERROR",
                                                "message": "no order for {{ event.email }}"}}}


def _needles(who: dict[str, str]) -> dict[tuple[str, str], str]:
    return {(name, form): text for name, value in who.items()
            for form, text in forms_of(value).items()}


def _found(runtime: Runtime, who: dict[str, str]) -> list[str]:
    search = Search(needles=_needles(who))
    search_database(runtime, search)
    assert search.places > 100  # every column of every table was read
    return search.found


@pytest.fixture
def history(client: TestClient, runtime: Runtime, workspace) -> dict[str, Any]:
    """Ada's data everywhere a contact's data goes, and Bob's beside it."""
    create(client, _greeting())
    hook = install_hook(client, _rejecting_hook())
    trigger(client, "greet", contact=ADA, idempotency_key=ADA["email"],
            event={"note": f"call {ADA['phone']}"})
    trigger(client, "greet", contact=BOB)
    for who in (ADA, BOB):
        assert client.post(hook, json={"email": who["email"]}).status_code == 202
    drain(runtime)
    [ada] = client.get("/api/v1/contacts", params={"search": ADA["email"]}).json()["items"]
    ada_id = ada["id"]
    token = unsubscribe_service.token(runtime, workspace_id=workspace.id, contact_id=ada_id,
                                      channel="email")
    with session_scope(runtime.sessions) as session:
        unsubscribe_service.unsubscribe(session, runtime, text=token, now=runtime.clock())
    lifted = client.post(f"/api/v1/contacts/{ada_id}/suppression/lift",
                         json={"channel": "email", "reason": f"{ADA['email']} asked again"})
    assert lifted.status_code == 200, lifted.text
    bulk = client.post("/api/v1/bulk-operations", json={
        "action": "retry", "filter": {"status": "FAILED", "contact": ADA["email"]},
        "reason": f"retry for {ADA['email']}"})
    assert bulk.status_code == 202, bulk.text
    return {"ada": ada_id}


def _statuses(client: TestClient) -> dict[str, Any]:
    runs = client.get("/api/v1/runs", params={"limit": 100}).json()
    deliveries = client.get("/api/v1/deliveries", params={"limit": 100}).json()
    return {"runs": sorted((r["id"], r["status"]) for r in runs["items"]),
            "run_counts": runs["counts"],
            "deliveries": sorted((d["id"], d["status"]) for d in deliveries["items"]),
            "delivery_counts": deliveries["counts"]}


class TestErase:
    def test_nothing_of_the_contact_is_left_and_every_status_and_count_stays(
            self, client: TestClient, runtime: Runtime, history: dict[str, Any]) -> None:
        assert len(_found(runtime, ADA)) > 10  # it was everywhere: the scan sees it
        before = _statuses(client)
        searched = {"q": ADA["email"], "range": "30d"}
        assert len(client.get("/api/v1/runs", params=searched).json()["items"]) == 2

        response = client.post(f"/api/v1/contacts/{history['ada']}/erase",
                               json={"reason": "erasure request #42"})

        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["id"], body["runs"], body["attempts"]) == (history["ada"], 2, 1)
        assert _found(runtime, ADA) == []
        assert _found(runtime, BOB) != []  # the scan finds what is still there
        assert client.get("/api/v1/runs", params=searched).json()["items"] == []
        with session_scope(runtime.sessions) as session:
            indexed = index_words(session)
        assert not (set(words(ADA["email"]) + words(ADA["phone"])) - {"example", "com"}) & indexed
        assert set(words(BOB["email"])) <= indexed
        assert _statuses(client) == before
        with session_scope(runtime.sessions) as session:
            contact = session.get(Contact, uuid.UUID(history["ada"]))
            assert contact is not None
            assert contact.erased_at is not None
            assert (contact.email, contact.phone, contact.external_id, contact.attributes) == (
                None, None, None, {})
        [event] = client.get("/api/v1/audit", params={"action": "contact.erase"}).json()[
            "items"]
        assert event["detail"] == {"reason": "erasure request #42", "runs": 2, "attempts": 1}

    def test_twice_is_409(self, client, runtime, history) -> None:
        path = f"/api/v1/contacts/{history['ada']}/erase"
        assert client.post(path, json={"reason": "asked"}).status_code == 200
        again = client.post(path, json={"reason": "asked"})
        assert again.status_code == 409, again.text

    @pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "x" * 501},
                                      {"reason": "ok", "extra": 1}])
    def test_bad_input_is_422_and_erases_nothing(self, client, runtime, history,
                                                 body) -> None:
        response = client.post(f"/api/v1/contacts/{history['ada']}/erase", json=body)
        assert response.status_code == 422, response.text
        assert _found(runtime, {"email": ADA["email"]})

    def test_the_audit_trail_of_an_erased_contact_names_no_one(self, client, runtime,
                                                              history) -> None:
        client.post(f"/api/v1/contacts/{history['ada']}/erase", json={"reason": "asked"})
        trail = json.dumps(client.get("/api/v1/audit", params={"limit": 100}).json())
        assert ADA["email"] not in trail
        assert "[erased]" in trail  # the lift's reason kept its other words
