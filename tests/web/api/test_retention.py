"""GET and PUT /api/v1/settings/retention: how long the workspace keeps its history."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from relayflow.services.runtime import Runtime
from tests.conftest import WorkspaceHandle
from tests.web.pages.test_settings import audit_actions

PATH = "/api/v1/settings/retention"
UNSET = {"days": None, "failed_days": None}


def test_unset_until_set_then_stored_and_audited(client: TestClient, viewer_client: TestClient,
                                                 runtime: Runtime,
                                                 workspace: WorkspaceHandle) -> None:
    assert client.get(PATH).json() == UNSET
    response = client.put(PATH, json={"days": 30, "failed_days": 365})
    assert response.status_code == 200, response.text
    assert response.json() == {"days": 30, "failed_days": 365}
    assert viewer_client.get(PATH).json() == {"days": 30, "failed_days": 365}
    assert "retention.set" in audit_actions(runtime, workspace.id)
    assert client.put(PATH, json={}).json() == UNSET  # back to the command's age


@pytest.mark.parametrize("body", [{"days": 0}, {"days": -3}, {"failed_days": 36_501},
                                  {"days": "30"}, {"days": 1.5}, {"days": True},
                                  {"weeks": 3}, [30]])
def test_a_bad_retention_is_refused_and_nothing_changes(client: TestClient, body: Any) -> None:
    client.put(PATH, json={"days": 60})
    response = client.put(PATH, json=body)
    assert response.status_code == 422, response.text
    assert client.get(PATH).json() == {"days": 60, "failed_days": None}


def test_only_an_admin_may_set_it(viewer_client: TestClient, client: TestClient) -> None:
    assert viewer_client.put(PATH, json={"days": 5}).status_code == 403
    assert client.get(PATH).json() == UNSET


def test_one_workspace_leaves_the_other_alone(client: TestClient,
                                              other_client: TestClient) -> None:
    assert other_client.put(PATH, json={"days": 7}).status_code == 200
    assert client.put(PATH, json={"days": 400}).status_code == 200
    assert other_client.get(PATH).json() == {"days": 7, "failed_days": None}
