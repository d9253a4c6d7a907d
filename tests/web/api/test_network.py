"""GET and PUT /api/v1/settings/network: the workspace's outbound allow-list."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi.testclient import TestClient

if TYPE_CHECKING:
    from tests.conftest import WorkspaceHandle

PATH = "/api/v1/settings/network"


class TestGetNetwork:
    def test_empty_until_set(self, client: TestClient) -> None:
        response = client.get(PATH)
        assert response.status_code == 200
        assert response.json() == {"allow": []}

    def test_any_member_may_read(self, client: TestClient, viewer_client: TestClient) -> None:
        client.put(PATH, json={"allow": ["crm.internal"]})
        assert viewer_client.get(PATH).json() == {"allow": ["crm.internal"]}


class TestPutNetwork:
    def test_stores_normalized_entries_and_returns_them(self, client: TestClient) -> None:
        response = client.put(PATH, json={"allow": ["127.0.0.1/32", "CRM.internal.",
                                                    "10.1.2.3/8", "::1", "crm.internal"]})

        assert response.status_code == 200, response.text
        assert response.json() == {"allow": ["127.0.0.1/32", "crm.internal", "10.0.0.0/8",
                                             "::1/128"]}
        assert client.get(PATH).json() == response.json()

    def test_replaces_the_list(self, client: TestClient) -> None:
        client.put(PATH, json={"allow": ["10.0.0.0/8"]})
        client.put(PATH, json={"allow": []})
        assert client.get(PATH).json() == {"allow": []}

    def test_invalid_entries_are_422_each_named(self, client: TestClient) -> None:
        response = client.put(PATH, json={"allow": ["http://crm.internal/", "crm.internal:8080",
                                                    "10.0.0.0/33", "fine.internal", "a..b"]})

        assert response.status_code == 422, response.text
        problems = response.json()["error"]["details"]["problems"]
        assert len(problems) == 4
        assert any("http://crm.internal/" in p for p in problems)
        assert any("ports are not supported" in p for p in problems)
        assert client.get(PATH).json() == {"allow": []}

    def test_a_body_without_a_list_is_422(self, client: TestClient) -> None:
        assert client.put(PATH, json={"allow": "10.0.0.0/8"}).status_code == 422
        assert client.put(PATH, json={"entries": []}).status_code == 422

    def test_too_many_entries_are_422(self, client: TestClient) -> None:
        entries = [f"10.0.{i}.0/24" for i in range(101)]
        assert client.put(PATH, json={"allow": entries}).status_code == 422

    def test_records_an_audit_event(self, client: TestClient,
                                    workspace: WorkspaceHandle) -> None:
        client.put(PATH, json={"allow": ["crm.internal"]})

        [event] = client.get("/api/v1/audit", params={"action": "network.set"}).json()["items"]
        assert event["actor"] == "key:" + workspace.api_key.split(".", 1)[0]
        assert event["detail"] == {"allow": ["crm.internal"]}

    def test_operators_and_viewers_may_not_change_it(self, client: TestClient,
                                                     viewer_client: TestClient) -> None:
        response = viewer_client.put(PATH, json={"allow": ["10.0.0.0/8"]})
        assert response.status_code == 403
        assert client.get(PATH).json() == {"allow": []}
