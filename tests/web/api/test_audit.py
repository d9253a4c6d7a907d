"""GET /api/v1/audit, and that every audited action leaves its event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

from relayflow.services.runtime import Runtime
from tests.support.worker import drain
from tests.web.api.definitions import create, rejecting, straight, trigger
from tests.web.api.history import freeze

if TYPE_CHECKING:
    from tests.conftest import WorkspaceHandle

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def _events(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/api/v1/audit", params={"limit": 200, **params})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _actor(workspace: WorkspaceHandle) -> str:
    return "key:" + workspace.api_key.split(".", 1)[0]


class TestAuditedActions:
    """Each action through the API leaves exactly one event naming its actor and target."""

    def test_run_cancel(self, client: TestClient, workspace: WorkspaceHandle) -> None:
        create(client, straight())
        run_id = trigger(client, "onboarding")
        client.post(f"/api/v1/runs/{run_id}/cancel")

        [event] = _events(client, action="run.cancel")

        assert (event["actor"], event["target_type"], event["target_id"]) == (
            _actor(workspace), "run", run_id)

    def test_run_retry(self, client: TestClient, runtime: Runtime) -> None:
        create(client, rejecting())
        run_id = trigger(client, "rejecter", event={"reason": "x"})
        drain(runtime)
        retry_id = client.post(f"/api/v1/runs/{run_id}/retry").json()["id"]

        [event] = _events(client, action="run.retry")

        assert (event["target_id"], event["detail"]) == (
            run_id, {"retry_run_id": retry_id, "version": "original"})

    def test_workflow_activate_and_deactivate(self, client: TestClient) -> None:
        create(client, straight())
        trigger(client, "onboarding")
        client.post("/api/v1/workflows/onboarding/deactivate")

        events = _events(client, action="workflow.activate,workflow.deactivate")

        assert [(e["action"], e["target_id"]) for e in events] == [
            ("workflow.deactivate", "onboarding"), ("workflow.activate", "onboarding")]
        assert events[0]["detail"] == {"canceled_runs": 1}

    def test_key_create_and_revoke(self, client: TestClient, workspace: WorkspaceHandle) -> None:
        prefix = client.post("/api/v1/keys", json={"name": "ci", "role": "viewer"}
                             ).json()["prefix"]
        client.delete(f"/api/v1/keys/{prefix}")

        events = _events(client, action="key.create,key.revoke")

        assert [(e["action"], e["target_id"], e["actor"]) for e in events[:2]] == [
            ("key.revoke", prefix, _actor(workspace)), ("key.create", prefix, _actor(workspace))]
        assert events[1]["detail"] == {"role": "viewer", "name": "ci"}
        # the workspace's first key, made by `workspace create`, is there too
        assert (events[2]["action"], events[2]["actor"]) == ("key.create", "cli")

    def test_secret_set_and_delete(self, client: TestClient) -> None:
        client.put("/api/v1/secrets/CRM_TOKEN", json={"value": "v-do-not-log"})
        client.delete("/api/v1/secrets/CRM_TOKEN")

        events = _events(client, action="secret.set,secret.delete")

        assert [(e["action"], e["target_id"]) for e in events] == [
            ("secret.delete", "CRM_TOKEN"), ("secret.set", "CRM_TOKEN")]
        assert "v-do-not-log" not in str(events)

    def test_member_add(self, client: TestClient) -> None:
        client.post("/api/v1/members", json={"email": "op@example.com", "role": "operator",
                                             "password": "long enough password"})

        [event] = _events(client, action="member.add")

        assert event["detail"] == {"email": "op@example.com", "role": "operator"}
        assert "long enough password" not in str(event)

    def test_refused_actions_leave_no_event(
        self, client: TestClient, viewer_client: TestClient
    ) -> None:
        create(client, straight())
        run_id = trigger(client, "onboarding")
        before = _events(client)

        viewer_client.post(f"/api/v1/runs/{run_id}/cancel")
        client.post(f"/api/v1/runs/{run_id}/retry")  # 409: still pending
        client.delete("/api/v1/keys/rf_00000000")  # 404

        assert _events(client) == before


class TestListAudit:
    def test_newest_first_with_every_field(
        self, client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        freeze(runtime, T0)
        client.put("/api/v1/secrets/A", json={"value": "x"})
        freeze(runtime, T0 + timedelta(minutes=1))
        client.put("/api/v1/secrets/B", json={"value": "x"})

        items = _events(client, action="secret.set")

        assert [e["target_id"] for e in items] == ["B", "A"]
        assert set(items[0]) == {"id", "actor", "action", "target_type", "target_id",
                                 "detail", "at"}
        assert items[0]["at"].replace("Z", "+00:00") == (T0 + timedelta(minutes=1)).isoformat()
        assert items[0]["detail"] == {"name": "B", "created": True}

    def test_pages_never_skip_or_repeat(self, client: TestClient, runtime: Runtime) -> None:
        freeze(runtime, T0)  # every event at the same moment: the id breaks the ties
        for i in range(7):
            client.put(f"/api/v1/secrets/S{i}", json={"value": "x"})
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 3, "action": "secret.set"}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/api/v1/audit", params=params).json()
            seen += [e["target_id"] for e in page["items"]]
            client.put("/api/v1/secrets/LATE", json={"value": "x"})  # newer: never on a page
            cursor = page["next_cursor"]
            if cursor is None:
                break

        assert seen == [f"S{i}" for i in range(6, -1, -1)]

    def test_unknown_action_matches_nothing(self, client: TestClient) -> None:
        assert _events(client, action="no.such.action") == []

    @pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 201}, {"cursor": "garbage"}])
    def test_invalid_paging_is_422(self, client: TestClient, params: dict[str, Any]) -> None:
        assert client.get("/api/v1/audit", params=params).status_code == 422

    def test_viewer_can_read(self, client: TestClient, viewer_client: TestClient) -> None:
        client.put("/api/v1/secrets/A", json={"value": "x"})

        assert [e["action"] for e in _events(viewer_client, action="secret.set")] == [
            "secret.set"]

    def test_another_workspace_events_are_not_listed(
        self, client: TestClient, other_client: TestClient
    ) -> None:
        other_client.put("/api/v1/secrets/THEIRS", json={"value": "x"})

        assert _events(client, action="secret.set") == []
