"""GET /api/v1/runs against the seeded history of tests/web/api/history.py: every filter,
combinations, exact ids in order and exact chip counts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from relayflow.web.app import create_app
from tests.web.api.history import NEWEST_FIRST, NOW, History, World, freeze, seeded_world

ALL_COUNTS = {"ALL": 9, "RUNNING": 2, "COMPLETED": 2, "FAILED": 3, "CANCELED": 2}
ZERO = {"ALL": 0, "RUNNING": 0, "COMPLETED": 0, "FAILED": 0, "CANCELED": 0}


def _iso(delta: timedelta) -> str:
    return (NOW - delta).isoformat()


# These tests only read, so they share one seeded database (seeding takes a while). Each
# uses only the fixtures below, never the per-test database ones.
@pytest.fixture(scope="module")
def world(
    _database_template: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    with seeded_world(_database_template, tmp_path_factory.mktemp("history")) as seeded:
        yield seeded


@pytest.fixture
def history(world: World) -> Iterator[History]:
    yield world.history
    freeze(world.runtime, NOW)  # undo any test's clock change


@pytest.fixture
def client(world: World) -> TestClient:
    return world.client


@pytest.fixture
def other_client(world: World) -> TestClient:
    return world.other_client


def _list(client: TestClient, params: dict[str, Any]) -> dict[str, Any]:
    response = client.get("/api/v1/runs", params={"limit": 200, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# (params, runs expected newest first, chip counts)
CASES: list[tuple[dict[str, Any], list[str], dict[str, int]]] = [
    ({}, NEWEST_FIRST, ALL_COUNTS),
    # status: exact statuses; the counts ignore it
    ({"status": "FAILED"}, ["r9", "r6", "r2"], ALL_COUNTS),
    ({"status": "RUNNING"}, ["r3"], ALL_COUNTS),
    ({"status": "PENDING"}, ["r7"], ALL_COUNTS),
    ({"status": "PENDING,RUNNING"}, ["r7", "r3"], ALL_COUNTS),
    ({"status": "completed, Canceled"}, ["r8", "r5", "r4", "r1"], ALL_COUNTS),
    # workflow
    ({"workflow": "hold"}, ["r8", "r5", "r3"],
     {"ALL": 3, "RUNNING": 1, "COMPLETED": 0, "FAILED": 0, "CANCELED": 2}),
    ({"workflow": "onboarding"}, ["r7", "r4", "r1"],
     {"ALL": 3, "RUNNING": 1, "COMPLETED": 2, "FAILED": 0, "CANCELED": 0}),
    # contact, normalised
    ({"contact": "  ADA@Example.COM "}, ["r6", "r3", "r1"],
     {"ALL": 3, "RUNNING": 1, "COMPLETED": 1, "FAILED": 1, "CANCELED": 0}),
    ({"contact": "+1 (415) 555-0123"}, ["r8", "r4"],
     {"ALL": 2, "RUNNING": 0, "COMPLETED": 1, "FAILED": 0, "CANCELED": 1}),
    ({"contact": "+14155550123"}, ["r8", "r4"],
     {"ALL": 2, "RUNNING": 0, "COMPLETED": 1, "FAILED": 0, "CANCELED": 1}),
    ({"contact": "carol@example.com"}, [], ZERO),
    ({"contact": "nobody@example.com"}, [], ZERO),
    ({"contact": "+44 20 7946 0958"}, [], ZERO),
    # range, back from now
    ({"range": "24h"}, ["r9", "r8", "r7", "r6"],
     {"ALL": 4, "RUNNING": 1, "COMPLETED": 0, "FAILED": 2, "CANCELED": 1}),
    ({"range": "7d"}, ["r9", "r8", "r7", "r6", "r5", "r4"],
     {"ALL": 6, "RUNNING": 1, "COMPLETED": 1, "FAILED": 2, "CANCELED": 2}),
    ({"range": "30d"}, ["r9", "r8", "r7", "r6", "r5", "r4", "r3", "r2"],
     {"ALL": 8, "RUNNING": 2, "COMPLETED": 1, "FAILED": 3, "CANCELED": 2}),
    # from (inclusive) / to (exclusive)
    ({"from": _iso(timedelta(days=20)), "to": _iso(timedelta(days=2))}, ["r4", "r3", "r2"],
     {"ALL": 3, "RUNNING": 1, "COMPLETED": 1, "FAILED": 1, "CANCELED": 0}),
    ({"from": _iso(timedelta(days=3))}, ["r9", "r8", "r7", "r6", "r5", "r4"],
     {"ALL": 6, "RUNNING": 1, "COMPLETED": 1, "FAILED": 2, "CANCELED": 2}),
    ({"to": _iso(timedelta(days=10))}, ["r2", "r1"],
     {"ALL": 2, "RUNNING": 0, "COMPLETED": 1, "FAILED": 1, "CANCELED": 0}),
    ({"from": "2024-05-29T12:00:00"}, ["r9", "r8", "r7", "r6", "r5", "r4"],  # naive = UTC
     {"ALL": 6, "RUNNING": 1, "COMPLETED": 1, "FAILED": 2, "CANCELED": 2}),
    ({"from": "2024-05-29T14:00:00+02:00"}, ["r9", "r8", "r7", "r6", "r5", "r4"],
     {"ALL": 6, "RUNNING": 1, "COMPLETED": 1, "FAILED": 2, "CANCELED": 2}),
    ({"from": "2024-05-29T12:00:00-02:00"}, ["r9", "r8", "r7", "r6", "r5"],
     {"ALL": 5, "RUNNING": 1, "COMPLETED": 0, "FAILED": 2, "CANCELED": 2}),
    ({"from": _iso(timedelta(days=3)), "to": _iso(timedelta(days=3))}, [], ZERO),
    # combinations
    ({"workflow": "rejecter", "contact": "ada@example.com"}, ["r6"],
     {"ALL": 1, "RUNNING": 0, "COMPLETED": 0, "FAILED": 1, "CANCELED": 0}),
    ({"status": "FAILED", "range": "7d"}, ["r9", "r6"],
     {"ALL": 6, "RUNNING": 1, "COMPLETED": 1, "FAILED": 2, "CANCELED": 2}),
    ({"workflow": "onboarding", "contact": "bob@example.com", "status": "PENDING"}, ["r7"],
     {"ALL": 1, "RUNNING": 1, "COMPLETED": 0, "FAILED": 0, "CANCELED": 0}),
    ({"workflow": "hold", "range": "24h", "status": "CANCELED"}, ["r8"],
     {"ALL": 1, "RUNNING": 0, "COMPLETED": 0, "FAILED": 0, "CANCELED": 1}),
    ({"workflow": "hold", "contact": "bob@example.com", "status": "RUNNING"}, [],
     {"ALL": 1, "RUNNING": 0, "COMPLETED": 0, "FAILED": 0, "CANCELED": 1}),
    ({"contact": "ada@example.com", "from": _iso(timedelta(days=15)),
      "to": _iso(timedelta(hours=1))}, ["r6", "r3"],
     {"ALL": 2, "RUNNING": 1, "COMPLETED": 0, "FAILED": 1, "CANCELED": 0}),
    ({"workflow": "nope"}, [], ZERO),
    ({"workflow": "nope", "contact": "ada@example.com"}, [], ZERO),
]


class TestListRunsFilters:
    @pytest.mark.parametrize(("params", "expected", "counts"), CASES,
                             ids=[repr(c[0]) for c in CASES])
    def test_answers_exactly(
        self, client: TestClient, history: History, params: dict[str, Any],
        expected: list[str], counts: dict[str, int],
    ) -> None:
        body = _list(client, params)

        assert history.names([r["id"] for r in body["items"]]) == expected
        assert body["counts"] == counts
        assert body["next_cursor"] is None

    def test_contact_filter_by_id(self, client: TestClient, history: History) -> None:
        ada = _list(client, {"contact": "ada@example.com"})["items"][0]["contact"]["id"]

        body = _list(client, {"contact": ada})

        assert history.names([r["id"] for r in body["items"]]) == ["r6", "r3", "r1"]

    def test_national_phone_number_is_read_in_the_default_region(
        self, world: World, history: History
    ) -> None:
        app = create_app(world.settings.model_copy(update={"default_phone_region": "US"}),
                         runtime=world.runtime)
        with TestClient(app, headers=world.workspace.headers) as us_client:
            body = _list(us_client, {"contact": "(415) 555-0123"})

        assert history.names([r["id"] for r in body["items"]]) == ["r8", "r4"]

    def test_national_phone_number_without_a_region_is_422(
        self, client: TestClient, history: History
    ) -> None:
        response = client.get("/api/v1/runs", params={"contact": "(415) 555-0123"})

        assert response.status_code == 422
        assert "country code" in response.json()["error"]["message"]

    @pytest.mark.parametrize("contact", ["not-a-phone", "ada@", "@example.com", "12"])
    def test_unparsable_contact_is_422(
        self, client: TestClient, history: History, contact: str
    ) -> None:
        response = client.get("/api/v1/runs", params={"contact": contact})

        assert response.status_code == 422
        assert response.json()["error"]["code"] == "InvalidInput"

    @pytest.mark.parametrize("params", [
        {"range": "24h", "from": "2024-05-01T00:00:00Z"},
        {"range": "7d", "to": "2024-05-01T00:00:00Z"},
        {"from": "2024-05-02T00:00:00Z", "to": "2024-05-01T00:00:00Z"},
        {"range": "1y"},
        {"from": "yesterday"},
        {"to": "2024-13-01T00:00:00Z"},
        {"from": "0001-01-01T00:00:00+05:00"},
    ])
    def test_invalid_time_window_is_422(
        self, client: TestClient, history: History, params: dict[str, str]
    ) -> None:
        response = client.get("/api/v1/runs", params=params)

        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "InvalidInput"

    def test_range_counts_back_from_the_current_time(
        self, client: TestClient, world: World, history: History
    ) -> None:
        freeze(world.runtime, NOW + timedelta(hours=23, minutes=45))

        body = _list(client, {"range": "24h"})

        assert history.names([r["id"] for r in body["items"]]) == ["r9"]

    def test_other_workspace_sees_only_its_own_run(
        self, other_client: TestClient, history: History
    ) -> None:
        body = _list(other_client, {})

        assert [r["id"] for r in body["items"]] == [history.other_run]
        assert body["counts"]["ALL"] == 1


class TestListRunsItems:
    def test_items_carry_every_field(self, client: TestClient, history: History) -> None:
        items = {r["id"]: r for r in _list(client, {})["items"]}

        r4 = items[history.ids["r4"]]
        assert set(r4) == {
            "id", "workflow", "version", "contact", "status", "trigger", "created_at",
            "started_at", "finished_at", "duration_ms", "current_node", "waiting_until",
            "error", "parent_run_id", "retry_of", "duplicates_ignored", "fingerprint",
            "canceled_by", "cancel_reason", "latest_retry",
        }
        assert r4["workflow"] == "onboarding"
        assert r4["version"] == 1
        assert r4["contact"]["phone"] == "+14155550123"
        assert r4["contact"]["email"] is None
        assert r4["status"] == "COMPLETED"
        assert r4["trigger"] == "manual"
        assert r4["current_node"] == "done"
        assert r4["duration_ms"] == 0  # the clock stood still while it ran
        assert r4["error"] is None
        assert r4["parent_run_id"] is None
        assert r4["retry_of"] is None
        assert (r4["canceled_by"], r4["cancel_reason"], r4["latest_retry"]) == (None, None, None)

    def test_parked_run_says_where_it_waits_and_until_when(
        self, client: TestClient, history: History
    ) -> None:
        items = {r["id"]: r for r in _list(client, {})["items"]}

        r3 = items[history.ids["r3"]]
        assert r3["status"] == "RUNNING"
        assert r3["current_node"] == "hold_90d"
        assert r3["waiting_until"]["node"] == "hold_90d"
        until = history.created["r3"] + timedelta(days=90)
        assert r3["waiting_until"]["until"].replace("Z", "+00:00") == until.isoformat()

    @pytest.mark.parametrize("name", ["r5", "r7", "r8", "r1"])
    def test_runs_not_parked_have_no_waiting_until(
        self, client: TestClient, history: History, name: str
    ) -> None:
        items = {r["id"]: r for r in _list(client, {})["items"]}

        assert items[history.ids[name]]["waiting_until"] is None

    def test_failed_run_carries_its_error(self, client: TestClient, history: History) -> None:
        items = {r["id"]: r for r in _list(client, {})["items"]}

        assert items[history.ids["r6"]]["error"] == "Rejected: r6"
        assert items[history.ids["r9"]]["contact"] is None

    def test_created_at_is_the_trigger_time(self, client: TestClient, history: History) -> None:
        items = _list(client, {})["items"]

        for item in items:
            name = history.names([item["id"]])[0]
            created = item["created_at"].replace("Z", "+00:00")
            assert created == history.created[name].isoformat()


class TestListRunsPaging:
    def test_pages_follow_the_same_order(self, client: TestClient, history: History) -> None:
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            body = client.get("/api/v1/runs", params=params).json()
            pages += 1
            assert body["counts"] == ALL_COUNTS  # every page carries the chip counts
            seen += [r["id"] for r in body["items"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break

        assert history.names(seen) == NEWEST_FIRST
        assert pages == 5

    def test_cursor_keeps_the_filters_own_order(
        self, client: TestClient, history: History
    ) -> None:
        first = client.get("/api/v1/runs", params={"workflow": "hold", "limit": 2}).json()
        rest = client.get("/api/v1/runs", params={"workflow": "hold", "limit": 2,
                                                  "cursor": first["next_cursor"]}).json()

        assert history.names([r["id"] for r in first["items"]]) == ["r8", "r5"]
        assert history.names([r["id"] for r in rest["items"]]) == ["r3"]
        assert rest["next_cursor"] is None
