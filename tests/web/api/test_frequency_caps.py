"""GET and PUT /api/v1/settings/frequency-caps: the workspace's per-contact caps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

from relayflow.services import frequency as frequency_service

if TYPE_CHECKING:
    from tests.conftest import WorkspaceHandle

PATH = "/api/v1/settings/frequency-caps"
NONE = {"email": None, "sms": None}


class TestGetFrequencyCaps:
    def test_nothing_is_capped_until_set(self, client: TestClient) -> None:
        response = client.get(PATH)
        assert response.status_code == 200
        assert response.json() == NONE

    def test_any_member_may_read(self, client: TestClient, viewer_client: TestClient) -> None:
        client.put(PATH, json={"email": 3})
        assert viewer_client.get(PATH).json() == {"email": 3, "sms": None}

    def test_every_channel_is_a_field(self, client: TestClient) -> None:
        schema = client.get("/api/openapi.json").json()["components"]["schemas"]
        assert tuple(schema["FrequencyCaps"]["properties"]) == frequency_service.CHANNELS


class TestPutFrequencyCaps:
    def test_stores_the_caps_and_returns_them(self, client: TestClient) -> None:
        response = client.put(PATH, json={"email": 3, "sms": 2})

        assert response.status_code == 200, response.text
        assert response.json() == {"email": 3, "sms": 2}
        assert client.get(PATH).json() == {"email": 3, "sms": 2}

    def test_null_or_missing_means_no_cap(self, client: TestClient) -> None:
        client.put(PATH, json={"email": 3, "sms": 2})

        assert client.put(PATH, json={"email": None}).json() == NONE
        assert client.put(PATH, json={"sms": 10_000}).json() == {"email": None, "sms": 10_000}
        assert client.put(PATH, json={}).json() == NONE

    @pytest.mark.parametrize("body", [
        {"push": 3}, {"email": 0}, {"email": -1}, {"sms": 10_001}, {"email": "3"},
        {"email": 2.5}, {"email": True}, {"email": [3]},
    ], ids=str)
    def test_invalid_caps_are_422_and_change_nothing(self, client: TestClient,
                                                     body: dict[str, Any]) -> None:
        client.put(PATH, json={"email": 3})

        response = client.put(PATH, json=body)

        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "InvalidInput"
        assert error["details"]["fields"][0]["loc"][-1] in ("push", "email", "sms")
        assert client.get(PATH).json() == {"email": 3, "sms": None}

    def test_a_body_that_is_not_an_object_is_422(self, client: TestClient) -> None:
        assert client.put(PATH, json=[3]).status_code == 422
        assert client.put(PATH, json=3).status_code == 422

    def test_records_an_audit_event(self, client: TestClient,
                                    workspace: WorkspaceHandle) -> None:
        client.put(PATH, json={"email": 3, "sms": None})

        [event] = client.get("/api/v1/audit",
                             params={"action": "frequency.set"}).json()["items"]
        assert event["actor"] == "key:" + workspace.api_key.split(".", 1)[0]
        assert event["detail"] == {"caps": {"email": 3}}

    def test_operators_and_viewers_may_not_change_it(self, client: TestClient,
                                                     viewer_client: TestClient) -> None:
        response = viewer_client.put(PATH, json={"email": 1})
        assert response.status_code == 403
        assert client.get(PATH).json() == NONE
