"""GET /api/v1/runs?q=: runs found by the words of their trigger payload, captured fields,
idempotency key and error, by key:value, by the start of their id; with every other
filter; bad searches refused. Runs made through the API and a worker, against a real HTTP
server for the captured fields, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import WorkspaceHandle
from tests.support.flows import install, run_of
from tests.support.worker import drain

ORDER = {"key": "order-flow", "trigger": {"type": "manual"}, "start": "done",
         "nodes": {"done": {"type": "END"}}}
REJECT = {"key": "reject-flow", "trigger": {"type": "manual"}, "start": "stop",
          "nodes": {"stop": {"type": "STOP_ERROR",
                             "message": "Carrier Zanzibar refused parcel {{ event.parcel }}"}}}


def _lookup(url: str) -> dict[str, Any]:
    return {"key": "lookup-flow", "trigger": {"type": "manual"}, "start": "call",
            "nodes": {"call": {"type": "INTEGRATION", "request": {"method": "GET", "url": url},
                               "capture": {"tier": "body.account.tier"}, "next": "done"},
                      "done": {"type": "END"}}}


def _start(client: TestClient, key: str, email: str, event: dict[str, Any],
           idempotency_key: str | None = None) -> str:
    body: dict[str, Any] = {"contact": {"email": email}, "event": event}
    if idempotency_key:
        body["idempotency_key"] = idempotency_key
    response = client.post(f"/api/v1/workflows/{key}/runs", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


@pytest.fixture
def runs(runtime, workspace: WorkspaceHandle, client: TestClient, http_server) -> dict[str, str]:
    """Five runs: two orders (nested payloads), one refused parcel (its error), one lookup
    (its captured tier), one with an idempotency key."""
    install(runtime, workspace.id, ORDER)
    install(runtime, workspace.id, REJECT)
    install(runtime, workspace.id, _lookup(f"{http_server.url}/json"))
    made = {
        "ada": _start(client, "order-flow", "ada@example.com",
                      {"order": {"id": "ORD-1042", "total": 99.5},
                       "customer": {"tier": "Platinum", "city": "New York"},
                       "items": [{"sku": "KETTLE-7"}]}),
        "bob": _start(client, "order-flow", "bob@example.com",
                      {"order": {"id": "ORD-10420", "total": 12},
                       "customer": {"tier": "silver", "city": "York"}}),
        "parcel": _start(client, "reject-flow", "ada@example.com", {"parcel": "PX-77"}),
        "lookup": _start(client, "lookup-flow", "cy@example.com", {"note": "plain"}),
        "keyed": _start(client, "order-flow", "cy@example.com", {"note": "plain"},
                        idempotency_key="import-2026-batch-9"),
    }
    drain(runtime)
    assert run_of(runtime, uuid.UUID(made["parcel"])).status == "FAILED"
    return made


def _found(client: TestClient, **params: Any) -> set[str]:
    response = client.get("/api/v1/runs", params={"limit": 200, **params})
    assert response.status_code == 200, response.text
    body = response.json()
    ids = {run["id"] for run in body["items"]}
    if "status" not in params:  # the chips count under every filter but the status
        assert body["counts"]["ALL"] == len(ids), body["counts"]
    return ids


def _names(runs: dict[str, str], ids: set[str]) -> set[str]:
    by_id = {v: k for k, v in runs.items()}
    return {by_id[i] for i in ids}


CASES = [
    # words of payload values, at any depth, whole words only, any case
    ("ORD-1042", {"ada"}),
    ("ord-10420", {"bob"}),
    ("kettle-7", {"ada"}),
    ("new york", {"ada"}),
    ("york", {"ada", "bob"}),
    ("99.5", {"ada"}),
    # key:value, dotted keys into objects, equal ignoring case, quotes for spaces
    ("customer.tier:platinum", {"ada"}),
    ("customer.tier:PLATINUM", {"ada"}),
    ('customer.city:"New York"', {"ada"}),
    ("customer.city:York", {"bob"}),
    ("order.total:12", {"bob"}),
    ("customer:platinum", set()),
    ("tier:platinum", set()),
    # the error of a failed run
    ("zanzibar", {"parcel"}),
    ("PX-77", {"parcel"}),
    # a captured field, by its words and by name
    ("gold", {"lookup"}),
    ("tier:gold", {"lookup"}),
    # an idempotency key
    ("import-2026-batch-9", {"keyed"}),
    ("batch", {"keyed"}),
    # every term must match
    ("york silver", {"bob"}),
    ("york customer.tier:silver", {"bob"}),
    ("york zanzibar", set()),
    # nothing
    ("ORD-104", set()),
    ("nowhere", set()),
]


@pytest.mark.parametrize(("q", "expected"), CASES)
def test_search_finds_exactly(client: TestClient, runs: dict[str, str], q: str,
                              expected: set[str]) -> None:
    assert _names(runs, _found(client, q=q)) == expected


def test_keys_alone_are_not_words(client: TestClient, runs: dict[str, str]) -> None:
    assert _found(client, q="customer") == set()
    assert _found(client, q="sku") == set()


def test_start_of_a_run_id(client: TestClient, runs: dict[str, str]) -> None:
    ada = runs["ada"]
    assert ada in _found(client, q=ada[:13])  # with its dash, as pages show ids
    assert _found(client, q=ada) == {ada}
    assert _found(client, q=ada.replace("-", "")) == {ada}


def test_combined_with_every_other_filter(client: TestClient, runs: dict[str, str]) -> None:
    assert _names(runs, _found(client, q="york", contact="bob@example.com")) == {"bob"}
    assert _names(runs, _found(client, q="york", status="COMPLETED")) == {"ada", "bob"}
    assert _names(runs, _found(client, q="york", status="FAILED")) == set()
    assert _names(runs, _found(client, q="plain", workflow="lookup-flow")) == {"lookup"}
    assert _names(runs, _found(client, q="york", range="24h")) == {"ada", "bob"}
    response = client.get("/api/v1/runs", params={"q": "york", "status": "FAILED"})
    assert response.json()["counts"]["COMPLETED"] == 2  # chips ignore the status only


def test_paging_a_search(client: TestClient, runs: dict[str, str]) -> None:
    first = client.get("/api/v1/runs", params={"q": "york", "limit": 1}).json()
    assert first["next_cursor"]
    second = client.get("/api/v1/runs", params={"q": "york", "limit": 1,
                                                 "cursor": first["next_cursor"]}).json()
    assert {first["items"][0]["id"], second["items"][0]["id"]} == {runs["ada"], runs["bob"]}
    assert second["next_cursor"] is None


def test_another_workspace_finds_nothing(client: TestClient, other_workspace: WorkspaceHandle,
                                         runs: dict[str, str]) -> None:
    response = client.get("/api/v1/runs", params={"q": "york"}, headers=other_workspace.headers)
    assert response.status_code == 200
    assert response.json()["items"] == []


@pytest.mark.parametrize(("q", "message"), [
    ("x" * 501, "at most 500 characters"),
    (" ".join(["york"] * 11), "at most 10 terms"),
    ('city:"New York', "not closed"),
    ("--- ***", "no letters or digits"),
    ("tier:---", "no letters or digits in its value"),
    ("york\x00", "NUL"),
])
def test_bad_searches_are_refused_clearly(client: TestClient, runs: dict[str, str], q: str,
                                          message: str) -> None:
    response = client.get("/api/v1/runs", params={"q": q})
    assert response.status_code == 422, response.text
    assert message in response.text


def test_an_empty_search_is_no_search(client: TestClient, runs: dict[str, str]) -> None:
    assert _found(client, q="   ") == set(runs.values())
