from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from relayflow.services import callback as callback_service
from relayflow.services import walk
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from tests.conftest import WorkspaceHandle
from tests.support.flows import set_provider
from tests.support.worker import drain
from tests.web.api.definitions import (
    create,
    rejecting,
    straight,
    trigger,
    upstream_child,
    upstream_parent,
    waiting,
)


def _parse(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None
    return parsed


class TestListRuns:
    def test_newest_first_with_run_fields(self, client: TestClient) -> None:
        create(client, straight())
        first = trigger(client, "onboarding")
        second = trigger(client, "onboarding", contact={"phone": "+44 20 7946 0958"})

        response = client.get("/api/v1/runs")

        assert response.status_code == 200
        body = response.json()
        assert [r["id"] for r in body["items"]] == [second, first]
        assert body["next_cursor"] is None
        run = body["items"][0]
        assert run["workflow"] == "onboarding"
        assert run["version"] == 1
        assert run["status"] == "PENDING"
        assert run["trigger"] == "manual"
        assert run["contact"]["phone"] == "+442079460958"
        assert run["contact"]["email"] is None
        assert run["duration_ms"] is None
        assert run["waiting_until"] is None
        _parse(run["created_at"])

    def test_filters_by_one_status(self, client: TestClient, runtime: Runtime) -> None:
        create(client, rejecting())
        failed = trigger(client, "rejecter", event={"reason": "x"})
        drain(runtime)
        pending = trigger(client, "rejecter", event={"reason": "y"})

        failed_ids = [r["id"] for r in client.get("/api/v1/runs?status=FAILED").json()["items"]]
        pending_ids = [r["id"] for r in client.get("/api/v1/runs?status=PENDING").json()["items"]]

        assert failed_ids == [failed]
        assert pending_ids == [pending]

    def test_filters_by_comma_separated_statuses_in_any_case(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        create(client, rejecting())
        create(client, waiting())
        failed = trigger(client, "rejecter", event={"reason": "x"})
        running = trigger(client, "drip")
        drain(runtime)
        trigger(client, "drip")  # PENDING: filtered out

        response = client.get("/api/v1/runs", params={"status": "failed, Running"})

        assert {r["id"] for r in response.json()["items"]} == {failed, running}

    def test_unknown_status_is_422(self, client: TestClient) -> None:
        response = client.get("/api/v1/runs?status=RUNNING,DONE")

        assert response.status_code == 422
        assert response.json()["error"]["code"] == "InvalidInput"
        assert "DONE" in response.json()["error"]["message"]

    def test_filters_by_workflow_key(self, client: TestClient) -> None:
        create(client, straight("alpha"))
        create(client, straight("beta"))
        alpha = trigger(client, "alpha")
        trigger(client, "beta")

        response = client.get("/api/v1/runs?workflow=alpha")

        assert [r["id"] for r in response.json()["items"]] == [alpha]

    def test_unknown_workflow_key_gives_an_empty_list(self, client: TestClient) -> None:
        create(client, straight())
        trigger(client, "onboarding")

        response = client.get("/api/v1/runs?workflow=nope")

        assert response.status_code == 200
        assert response.json() == {"items": [], "next_cursor": None, "counts": {
            "ALL": 0, "RUNNING": 0, "COMPLETED": 0, "FAILED": 0, "CANCELED": 0}}

    def test_another_workspace_runs_are_not_listed(
        self, client: TestClient, other_client: TestClient
    ) -> None:
        create(other_client, straight())
        trigger(other_client, "onboarding")

        assert client.get("/api/v1/runs").json()["items"] == []
        assert client.get("/api/v1/runs?workflow=onboarding").json()["items"] == []

    def test_limit_over_200_is_422(self, client: TestClient) -> None:
        response = client.get("/api/v1/runs?limit=201")

        assert response.status_code == 422
        assert response.json()["error"]["details"]["fields"][0]["loc"] == ["query", "limit"]

    def test_limit_zero_is_422(self, client: TestClient) -> None:
        assert client.get("/api/v1/runs?limit=0").status_code == 422

    def test_garbage_cursor_is_422(self, client: TestClient) -> None:
        response = client.get("/api/v1/runs?cursor=not-a-cursor")

        assert response.status_code == 422
        assert response.json()["error"]["code"] == "InvalidInput"


class TestGetRun:
    def test_completed_run_has_its_steps_in_order(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        create(client, straight())
        run_id = trigger(client, "onboarding", event={"plan": "pro"})
        drain(runtime)

        response = client.get(f"/api/v1/runs/{run_id}")

        assert response.status_code == 200
        run = response.json()
        assert run["status"] == "COMPLETED"
        assert run["error"] is None
        assert run["duration_ms"] == int(
            (_parse(run["finished_at"]) - _parse(run["started_at"])).total_seconds() * 1000
        )
        steps = run["steps"]
        assert [s["seq"] for s in steps] == [0, 1, 2, 3]
        assert [(s["node_id"], s["type"]) for s in steps] == [
            ("trigger", "TRIGGER"), ("check", "CONDITION"), ("welcome", "SEND_MESSAGE"),
            ("done", "END"),
        ]
        assert all(s["status"] == "COMPLETED" for s in steps)
        assert steps[1]["branch"] == "then"
        assert steps[2]["delivery_attempt_id"] is not None
        assert all(s["duration_ms"] is not None and s["duration_ms"] >= 0 for s in steps)
        assert run["children"] == []

    def test_stop_error_run_carries_the_rendered_message(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        create(client, rejecting())
        run_id = trigger(client, "rejecter", event={"reason": "card declined"})
        drain(runtime)

        run = client.get(f"/api/v1/runs/{run_id}").json()

        assert run["status"] == "FAILED"
        assert run["error"] == "Rejected: card declined"
        assert run["steps"][-1]["node_id"] == "stop"
        assert run["steps"][-1]["status"] == "FAILED"

    def test_parked_run_shows_when_it_wakes(self, client: TestClient, runtime: Runtime) -> None:
        create(client, waiting())
        run_id = trigger(client, "drip")
        drain(runtime)

        run = client.get(f"/api/v1/runs/{run_id}").json()

        assert run["status"] == "RUNNING"
        assert run["current_node"] == "wait_2d"
        assert run["waiting_until"]["node"] == "wait_2d"
        waited = _parse(run["waiting_until"]["until"]) - _parse(run["started_at"])
        assert 47 * 3600 < waited.total_seconds() <= 48 * 3600 + 60
        assert run["steps"][-1]["status"] == "WAITING"

    def test_child_run_is_linked_both_ways(self, client: TestClient, runtime: Runtime) -> None:
        create(client, upstream_child())
        create(client, upstream_parent())
        parent_id = trigger(client, "parent")
        drain(runtime)

        parent = client.get(f"/api/v1/runs/{parent_id}").json()
        child_id = parent["children"][0]["id"]
        child = client.get(f"/api/v1/runs/{child_id}").json()

        assert parent["status"] == "COMPLETED"
        assert parent["children"] == [{
            "id": child_id, "workflow": "child", "status": "COMPLETED", "relation": "child",
            "created_at": child["created_at"]}]
        assert parent["parent_run_id"] is None
        assert parent["parent"] is None
        assert child["parent_run_id"] == parent_id
        assert child["parent"]["id"] == parent_id
        assert child["parent"]["workflow"] == "parent"
        assert child["parent"]["relation"] == "parent"
        assert child["trigger"] == "upstream"
        assert child["children"] == []
        assert child["contact"] == parent["contact"]

    def test_parent_step_output_holds_the_child_run_id(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        create(client, upstream_child())
        create(client, upstream_parent())
        parent_id = trigger(client, "parent")
        drain(runtime)

        parent = client.get(f"/api/v1/runs/{parent_id}").json()

        step = next(s for s in parent["steps"] if s["node_id"] == "start_child")
        assert step["type"] == "TRIGGER_WORKFLOW"
        assert step["output"] == {"workflow": "child", "run_id": parent["children"][0]["id"]}

    def test_run_list_shows_the_parent_link(self, client: TestClient, runtime: Runtime) -> None:
        create(client, upstream_child())
        create(client, upstream_parent())
        parent_id = trigger(client, "parent")
        drain(runtime)

        items = client.get("/api/v1/runs", params={"workflow": "child"}).json()["items"]

        assert [i["parent_run_id"] for i in items] == [parent_id]

    def test_another_workspace_run_is_404_like_a_missing_one(
        self, client: TestClient, other_client: TestClient
    ) -> None:
        create(other_client, straight())
        theirs = trigger(other_client, "onboarding")

        response = client.get(f"/api/v1/runs/{theirs}")
        missing = client.get("/api/v1/runs/01a20f1e-0000-7000-8000-000000000000")

        assert response.status_code == missing.status_code == 404
        assert response.json()["error"]["code"] == missing.json()["error"]["code"] == "NotFound"

    def test_malformed_id_is_404(self, client: TestClient) -> None:
        response = client.get("/api/v1/runs/not-a-run-id")

        assert response.status_code == 404
        assert response.json()["error"]["code"] == "NotFound"


class TestCancelRun:
    def test_pending_run_is_canceled_at_once(self, client: TestClient) -> None:
        create(client, straight())
        run_id = trigger(client, "onboarding")

        response = client.post(f"/api/v1/runs/{run_id}/cancel")

        assert response.status_code == 200
        body = response.json()
        assert body["id"] == run_id
        assert body["status"] == "CANCELED"
        assert body["cancel_requested"] is False
        assert body["finished_at"] is not None
        assert client.get(f"/api/v1/runs/{run_id}").json()["status"] == "CANCELED"

    def test_canceling_again_is_409(self, client: TestClient) -> None:
        create(client, straight())
        run_id = trigger(client, "onboarding")
        client.post(f"/api/v1/runs/{run_id}/cancel")

        response = client.post(f"/api/v1/runs/{run_id}/cancel")

        assert response.status_code == 409
        assert response.json()["error"]["code"] == "Conflict"

    def test_completed_run_is_409(self, client: TestClient, runtime: Runtime) -> None:
        create(client, straight())
        run_id = trigger(client, "onboarding")
        drain(runtime)

        assert client.post(f"/api/v1/runs/{run_id}/cancel").status_code == 409

    def test_parked_run_is_canceled_at_once(self, client: TestClient, runtime: Runtime) -> None:
        create(client, waiting())
        run_id = trigger(client, "drip")
        drain(runtime)

        body = client.post(f"/api/v1/runs/{run_id}/cancel").json()

        assert body["status"] == "CANCELED"
        assert body["waiting_until"] is None
        steps = client.get(f"/api/v1/runs/{run_id}").json()["steps"]
        assert steps[-1]["status"] == "CANCELED"

    def test_run_held_by_a_worker_is_flagged_then_stopped(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        create(client, straight())
        run_id = trigger(client, "onboarding")
        walkers = walk.claim(runtime, worker="busy-worker", limit=10, lease_seconds=30)

        response = client.post(f"/api/v1/runs/{run_id}/cancel")

        assert response.status_code == 200
        assert response.json()["cancel_requested"] is True
        assert response.json()["status"] != "CANCELED"
        walk.commit(runtime, walkers)  # the worker reaches its next step boundary
        assert client.get(f"/api/v1/runs/{run_id}").json()["status"] == "CANCELED"

    def test_another_workspace_run_is_404(
        self, client: TestClient, other_client: TestClient
    ) -> None:
        create(other_client, straight())
        theirs = trigger(other_client, "onboarding")

        assert client.post(f"/api/v1/runs/{theirs}/cancel").status_code == 404
        assert other_client.get(f"/api/v1/runs/{theirs}").json()["status"] == "PENDING"

    def test_malformed_id_is_404(self, client: TestClient) -> None:
        assert client.post("/api/v1/runs/xyz/cancel").status_code == 404


def guarded_call(url: str, key: str = "guarded") -> dict[str, Any]:
    """An INTEGRATION POST to `url` that goes on by `on_error` when it fails, then ends."""
    return {"key": key, "trigger": {"type": "manual"}, "start": "call", "nodes": {
        "call": {"type": "INTEGRATION", "request": {"method": "POST", "url": url},
                 "next": "done", "on_error": "fallback"},
        "fallback": {"type": "END"}, "done": {"type": "END"}}}


def _key_prefix(workspace: WorkspaceHandle) -> str:
    return workspace.api_key.split(".", 1)[0]


class TestWhoCanceled:
    def test_the_api_key_and_its_reason_are_on_the_run(
        self, client: TestClient, workspace: WorkspaceHandle
    ) -> None:
        create(client, straight())
        run_id = trigger(client, "onboarding")

        body = client.post(f"/api/v1/runs/{run_id}/cancel",
                           json={"reason": "sent to the wrong audience"}).json()

        assert body["canceled_by"] == f"api-key:{_key_prefix(workspace)}"
        assert body["cancel_reason"] == "sent to the wrong audience"
        again = client.get(f"/api/v1/runs/{run_id}").json()
        assert (again["canceled_by"], again["cancel_reason"]) == (
            body["canceled_by"], "sent to the wrong audience")
        [listed] = client.get("/api/v1/runs", params={"status": "CANCELED"}).json()["items"]
        assert listed["canceled_by"] == body["canceled_by"]

    def test_no_reason_is_none_and_a_run_never_canceled_has_neither(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        create(client, straight())
        canceled, finished = trigger(client, "onboarding"), trigger(client, "onboarding")
        client.post(f"/api/v1/runs/{canceled}/cancel")
        drain(runtime)

        assert client.get(f"/api/v1/runs/{canceled}").json()["cancel_reason"] is None
        done = client.get(f"/api/v1/runs/{finished}").json()
        assert (done["status"], done["canceled_by"], done["cancel_reason"]) == (
            "COMPLETED", None, None)

    def test_a_run_its_worker_holds_shows_who_asked_before_and_after_it_stops(
        self, client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        create(client, straight())
        run_id = trigger(client, "onboarding")
        walkers = walk.claim(runtime, worker="busy-worker", limit=10, lease_seconds=30)

        body = client.post(f"/api/v1/runs/{run_id}/cancel", json={"reason": "duplicate"}).json()
        assert body["cancel_requested"] is True
        assert (body["canceled_by"], body["cancel_reason"]) == (
            f"api-key:{_key_prefix(workspace)}", "duplicate")
        walk.commit(runtime, walkers)

        after = client.get(f"/api/v1/runs/{run_id}").json()
        assert after["status"] == "CANCELED"
        assert (after["canceled_by"], after["cancel_reason"]) == (
            f"api-key:{_key_prefix(workspace)}", "duplicate")

    @pytest.mark.parametrize("body", [{"reason": "x" * 1001}, {"reason": "a\u0000b"},
                                      {"reason": 7}, {"why": "x"}])
    def test_a_bad_reason_is_422_and_the_run_goes_on(self, client: TestClient,
                                                      body: dict[str, Any]) -> None:
        create(client, straight())
        run_id = trigger(client, "onboarding")

        response = client.post(f"/api/v1/runs/{run_id}/cancel", json=body)

        assert response.status_code == 422, response.text
        assert client.get(f"/api/v1/runs/{run_id}").json()["status"] == "PENDING"


class TestStepTruth:
    def test_a_failed_request_that_took_on_error_is_a_handled_error(
        self, client: TestClient, runtime: Runtime, http_server: Any
    ) -> None:
        create(client, guarded_call(f"{http_server.url}/status/500"))
        run_id = trigger(client, "guarded")
        drain(runtime)

        run = client.get(f"/api/v1/runs/{run_id}").json()
        call = next(s for s in run["steps"] if s["node_id"] == "call")
        assert (call["status"], call["branch"], call["handled_error"]) == (
            "COMPLETED", "on_error", True)
        assert [s["handled_error"] for s in run["steps"] if s["node_id"] != "call"] == [
            False, False]

    def test_a_request_that_succeeded_is_no_handled_error(
        self, client: TestClient, runtime: Runtime, http_server: Any
    ) -> None:
        create(client, guarded_call(f"{http_server.url}/json"))
        run_id = trigger(client, "guarded")
        drain(runtime)

        call = client.get(f"/api/v1/runs/{run_id}").json()["steps"][1]
        assert (call["branch"], call["handled_error"]) == ("next", False)

    def test_a_send_step_shows_its_attempt_status_now(
        self, client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        create(client, straight())
        run_id = trigger(client, "onboarding")
        drain(runtime)
        send = client.get(f"/api/v1/runs/{run_id}").json()["steps"][2]
        assert (send["delivery_status"], send["output"]["status"]) == ("SENT", "SENT")

        with session_scope(runtime.sessions) as session:  # reported by the provider later
            callback_service.apply_event(
                session, workspace_id=workspace.id, channel="email", now=runtime.clock(),
                event={"type": "bounced", "bounce": "hard",
                       "attempt_id": send["delivery_attempt_id"]})

        send = client.get(f"/api/v1/runs/{run_id}").json()["steps"][2]
        assert send["delivery_status"] == "BOUNCED"
        assert send["output"]["status"] == "BOUNCED"
        assert send["attempts"][-1]["status"] == "BOUNCED"
        assert send["status"] == "COMPLETED"  # the step's own status stays as it was

    def test_a_send_step_retried_shows_its_latest_attempt(
        self, client: TestClient, runtime: Runtime, workspace: WorkspaceHandle, http_server: Any
    ) -> None:
        # The provider refuses the first request (429, Retry-After 1 s), takes the second.
        set_provider(runtime, workspace.id, "sms", {
            "type": "http", "url": f"{http_server.url}/ratelimited/1",
            "body": {"to": "{{ to }}", "text": "{{ body }}"}, "message_id_path": "body.id"})
        runtime.delivery_retry_base_seconds = 0.05
        create(client, {"key": "sms", "trigger": {"type": "manual"}, "start": "send", "nodes": {
            "send": {"type": "SEND_MESSAGE", "channel": "sms", "to": "+14155550123",
                     "body": "Code 4242", "next": "done"}, "done": {"type": "END"}}})
        run_id = trigger(client, "sms")
        deadline = time.monotonic() + 15
        while client.get(f"/api/v1/runs/{run_id}").json()["status"] != "COMPLETED":
            assert time.monotonic() < deadline, "the run did not finish"
            drain(runtime)
            time.sleep(0.05)

        send = client.get(f"/api/v1/runs/{run_id}").json()["steps"][1]
        assert [(a["attempt_number"], a["status"]) for a in send["attempts"]] == [
            (1, "FAILED"), (2, "SENT")]
        assert send["delivery_attempt_id"] == send["attempts"][1]["id"]
        assert send["delivery_status"] == send["output"]["status"] == "SENT"
