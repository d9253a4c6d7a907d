"""POST/GET /api/v1/contacts and GET /api/v1/contacts/{id}."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from relayflow.services.runtime import Runtime
from tests.support.worker import drain
from tests.web.api.definitions import create, rejecting, straight, trigger
from tests.web.api.history import freeze


def _upsert(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/contacts", json=body)
    assert response.status_code in (200, 201), response.text
    contact: dict[str, Any] = response.json()
    return contact


class TestUpsertContact:
    def test_new_identifiers_create_a_contact(self, client: TestClient) -> None:
        response = client.post("/api/v1/contacts", json={
            "email": " Ada@Example.COM", "phone": "+44 20 7946 0958", "external_id": "crm-1",
            "attributes": {"plan": "pro"}})

        assert response.status_code == 201
        body = response.json()
        assert body["email"] == "ada@example.com"
        assert body["phone"] == "+442079460958"
        assert body["external_id"] == "crm-1"
        assert body["attributes"] == {"plan": "pro"}
        assert body["suppressed"] == {}
        assert body["created_at"] == body["updated_at"]

    @pytest.mark.parametrize(("first", "again"), [
        ({"email": "ada@example.com"}, {"email": "ADA@example.com"}),
        ({"phone": "+14155550123"}, {"phone": "+1 (415) 555-0123"}),
        ({"external_id": "crm-1"}, {"external_id": "crm-1"}),
    ])
    def test_known_identifier_updates_that_contact(
        self, client: TestClient, first: dict[str, str], again: dict[str, str]
    ) -> None:
        created = _upsert(client, **first, attributes={"plan": "free"})

        response = client.post("/api/v1/contacts", json={**again, "attributes": {"plan": "pro"}})

        assert response.status_code == 200
        assert response.json()["id"] == created["id"]
        assert response.json()["attributes"] == {"plan": "pro"}

    def test_attributes_are_merged_and_null_removes_one(self, client: TestClient) -> None:
        _upsert(client, email="ada@example.com",
                attributes={"plan": "free", "city": "Paris", "tags": ["a"]})

        body = _upsert(client, email="ada@example.com",
                       attributes={"plan": "pro", "city": None, "score": 3})

        assert body["attributes"] == {"plan": "pro", "tags": ["a"], "score": 3}

    def test_a_new_identifier_is_added_to_the_matched_contact(self, client: TestClient) -> None:
        created = _upsert(client, email="ada@example.com")

        body = _upsert(client, email="ada@example.com", phone="+14155550123",
                       external_id="crm-9")

        assert body["id"] == created["id"]
        assert (body["phone"], body["external_id"]) == ("+14155550123", "crm-9")

    def test_identifiers_of_two_contacts_are_409_and_nothing_changes(
        self, client: TestClient
    ) -> None:
        ada = _upsert(client, email="ada@example.com", attributes={"plan": "free"})
        bob = _upsert(client, phone="+14155550123")

        response = client.post("/api/v1/contacts", json={
            "email": "ada@example.com", "phone": "+14155550123", "attributes": {"plan": "x"}})

        assert response.status_code == 409
        error = response.json()["error"]
        assert error["code"] == "ContactConflict"
        assert error["details"]["matches"] == {"email": ada["id"], "phone": bob["id"]}
        contacts = client.get("/api/v1/contacts").json()["items"]
        assert {(c["email"], c["phone"]) for c in contacts} == {
            ("ada@example.com", None), (None, "+14155550123")}
        assert client.get(f"/api/v1/contacts/{ada['id']}").json()["attributes"] == {
            "plan": "free"}

    def test_updated_at_moves_and_created_at_stays(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        start = datetime(2024, 6, 1, tzinfo=UTC)
        freeze(runtime, start)
        created = _upsert(client, email="ada@example.com")
        freeze(runtime, start + timedelta(hours=1))

        body = _upsert(client, email="ada@example.com", attributes={"plan": "pro"})

        assert body["created_at"] == created["created_at"]
        assert body["updated_at"] > created["updated_at"]

    @pytest.mark.parametrize("body", [
        {},
        {"attributes": {"plan": "pro"}},
        {"email": "not-an-email"},
        {"phone": "12"},
        {"email": "ada@example.com", "unknown": 1},
        {"email": "ada@example.com", "attributes": ["not", "an", "object"]},
        {"email": "a\u0000@example.com"},
        {"email": "ada@example.com", "attributes": {"k": "nul\u0000"}},
        {"external_id": "x" * 201},
        {"email": "a" * 320 + "@example.com"},
    ])
    def test_invalid_body_is_422(self, client: TestClient, body: dict[str, Any]) -> None:
        response = client.post("/api/v1/contacts", json=body)

        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "InvalidInput"
        assert client.get("/api/v1/contacts").json()["items"] == []

    def test_viewer_is_403(self, viewer_client: TestClient) -> None:
        response = viewer_client.post("/api/v1/contacts", json={"email": "ada@example.com"})

        assert response.status_code == 403

    def test_another_workspace_contact_is_not_matched(
        self, client: TestClient, other_client: TestClient
    ) -> None:
        theirs = _upsert(other_client, email="ada@example.com", attributes={"owner": "globex"})

        response = client.post("/api/v1/contacts", json={"email": "ada@example.com"})

        assert response.status_code == 201
        assert response.json()["id"] != theirs["id"]
        assert other_client.get(f"/api/v1/contacts/{theirs['id']}").json()["attributes"] == {
            "owner": "globex"}


class TestListContacts:
    @pytest.fixture
    def people(self, client: TestClient) -> dict[str, str]:
        return {
            "ada": _upsert(client, email="ada@example.com", external_id="CRM-100")["id"],
            "bob": _upsert(client, email="bob@example.org", phone="+14155550123")["id"],
            "cyd": _upsert(client, phone="+442079460958", external_id="crm-200")["id"],
            "pct": _upsert(client, email="100%_off@example.com")["id"],
        }

    def _ids(self, client: TestClient, people: dict[str, str], **params: Any) -> list[str]:
        response = client.get("/api/v1/contacts", params=params)
        assert response.status_code == 200, response.text
        names = {v: k for k, v in people.items()}
        return [names[c["id"]] for c in response.json()["items"]]

    def test_newest_first(self, client: TestClient, people: dict[str, str]) -> None:
        assert self._ids(client, people) == ["pct", "cyd", "bob", "ada"]

    @pytest.mark.parametrize(("search", "expected"), [
        ("EXAMPLE.COM", ["pct", "ada"]),
        ("example", ["pct", "bob", "ada"]),
        ("crm-", ["cyd", "ada"]),
        ("Crm-1", ["ada"]),
        ("415", ["bob"]),
        ("(415) 555-01", ["bob"]),
        ("+44 20", ["cyd"]),
        ("%", ["pct"]),
        ("_off", ["pct"]),
        ("nobody", []),
    ])
    def test_search_matches_part_of_any_identifier_in_any_case(
        self, client: TestClient, people: dict[str, str], search: str, expected: list[str]
    ) -> None:
        assert self._ids(client, people, search=search) == expected

    def test_pages_with_a_cursor(self, client: TestClient, people: dict[str, str]) -> None:
        first = client.get("/api/v1/contacts", params={"limit": 3}).json()
        rest = client.get("/api/v1/contacts",
                          params={"limit": 3, "cursor": first["next_cursor"]}).json()

        assert [c["id"] for c in first["items"]] == [people[n] for n in ("pct", "cyd", "bob")]
        assert [c["id"] for c in rest["items"]] == [people["ada"]]
        assert rest["next_cursor"] is None

    def test_paging_with_a_search_and_new_contacts_arriving(
        self, client: TestClient, people: dict[str, str]
    ) -> None:
        first = client.get("/api/v1/contacts", params={"limit": 1, "search": "example"}).json()
        _upsert(client, email="new@example.com")
        rest = client.get("/api/v1/contacts", params={
            "limit": 5, "search": "example", "cursor": first["next_cursor"]}).json()

        assert [c["id"] for c in first["items"] + rest["items"]] == [
            people["pct"], people["bob"], people["ada"]]

    def test_garbage_cursor_is_422(self, client: TestClient) -> None:
        assert client.get("/api/v1/contacts", params={"cursor": "nope!"}).status_code == 422

    def test_viewer_can_list(self, viewer_client: TestClient, people: dict[str, str]) -> None:
        assert len(viewer_client.get("/api/v1/contacts").json()["items"]) == 4

    def test_another_workspace_contacts_are_not_listed(
        self, other_client: TestClient, people: dict[str, str]
    ) -> None:
        assert other_client.get("/api/v1/contacts").json() == {"items": [], "next_cursor": None}


class TestGetContact:
    def test_contact_with_its_runs_newest_first(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        create(client, straight())
        create(client, rejecting())
        first = trigger(client, "onboarding", contact={"email": "ada@example.com"})
        second = trigger(client, "rejecter", contact={"email": "ada@example.com"},
                         event={"reason": "x"})
        trigger(client, "onboarding", contact={"email": "bob@example.com"})
        drain(runtime)
        ada = client.get("/api/v1/contacts", params={"search": "ada"}).json()["items"][0]

        response = client.get(f"/api/v1/contacts/{ada['id']}")

        assert response.status_code == 200
        body = response.json()
        assert body["email"] == "ada@example.com"
        assert [r["id"] for r in body["runs"]] == [second, first]
        assert [r["status"] for r in body["runs"]] == ["FAILED", "COMPLETED"]
        listed = client.get("/api/v1/runs", params={"contact": "ada@example.com"}).json()
        assert body["runs"] == listed["items"]  # the same item shape as /runs

    def test_only_the_newest_20_runs(self, client: TestClient, runtime: Runtime) -> None:
        create(client, straight())
        start = datetime(2024, 6, 1, tzinfo=UTC)
        run_ids = []
        for minute in range(23):
            freeze(runtime, start + timedelta(minutes=minute))
            run_ids.append(trigger(client, "onboarding"))
        ada = _upsert(client, email="ada@example.com")

        runs = client.get(f"/api/v1/contacts/{ada['id']}").json()["runs"]

        assert [r["id"] for r in runs] == run_ids[::-1][:20]

    def test_contact_without_runs(self, client: TestClient) -> None:
        ada = _upsert(client, email="ada@example.com")

        assert client.get(f"/api/v1/contacts/{ada['id']}").json()["runs"] == []

    def test_unknown_and_malformed_ids_are_404(self, client: TestClient) -> None:
        missing = client.get("/api/v1/contacts/01a20f1e-0000-7000-8000-000000000000")
        malformed = client.get("/api/v1/contacts/not-an-id")

        assert missing.status_code == malformed.status_code == 404
        assert missing.json()["error"]["code"] == "NotFound"
