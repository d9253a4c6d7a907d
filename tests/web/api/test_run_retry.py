"""POST /api/v1/runs/{id}/retry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import AuditEvent
from tests.support.worker import drain
from tests.web.api.definitions import create, rejecting, straight, trigger, waiting

if TYPE_CHECKING:
    from tests.conftest import WorkspaceHandle


def _failed_run(client: TestClient, runtime: Runtime, reason: str = "card declined") -> str:
    create(client, rejecting())
    run_id = trigger(client, "rejecter", event={"reason": reason})
    drain(runtime)
    assert client.get(f"/api/v1/runs/{run_id}").json()["status"] == "FAILED"
    return run_id


class TestRetryRun:
    def test_failed_run_gets_a_new_linked_run(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        original = _failed_run(client, runtime)

        response = client.post(f"/api/v1/runs/{original}/retry")

        assert response.status_code == 202
        body = response.json()
        assert body["id"] != original
        assert body["status"] == "PENDING"
        assert body["retry_of"] == original
        retry = client.get(f"/api/v1/runs/{body['id']}").json()
        assert retry["retry_of"] == original
        assert retry["trigger"] == "retry"
        assert retry["parent_run_id"] is None
        assert retry["original"]["id"] == original
        assert retry["original"]["relation"] == "original"
        assert retry["steps"][0]["output"] == {"trigger": "retry", "retry_of": original}

    def test_retry_uses_the_same_contact_and_payload(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        original_id = _failed_run(client, runtime, reason="expired card")

        retry_id = client.post(f"/api/v1/runs/{original_id}/retry").json()["id"]
        drain(runtime)

        original = client.get(f"/api/v1/runs/{original_id}").json()
        retry = client.get(f"/api/v1/runs/{retry_id}").json()
        assert retry["contact"] == original["contact"]
        assert retry["event"] == original["event"] == {"reason": "expired card"}
        assert retry["status"] == "FAILED"
        assert retry["error"] == "Rejected: expired card"

    def test_retry_pins_the_original_version(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        create(client, straight(body="Version one"))
        original = trigger(client, "onboarding")
        drain(runtime)
        create(client, straight(body="Version two"))  # the workflow moves on to version 2

        retry_id = client.post(f"/api/v1/runs/{original}/retry").json()["id"]
        drain(runtime)

        retry = client.get(f"/api/v1/runs/{retry_id}").json()
        assert retry["version"] == 1
        assert retry["status"] == "COMPLETED"
        fresh = client.get(f"/api/v1/runs/{trigger(client, 'onboarding')}").json()
        assert fresh["version"] == 2

    def test_retry_on_the_current_version_runs_the_fix(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        create(client, straight(body="Version one"))
        original = trigger(client, "onboarding")
        drain(runtime)
        create(client, straight(body="Version two"))

        response = client.post(f"/api/v1/runs/{original}/retry", json={"version": "current"})
        assert response.status_code == 202, response.text
        drain(runtime)

        retry = client.get(f"/api/v1/runs/{response.json()['id']}").json()
        assert retry["version"] == 2
        assert retry["status"] == "COMPLETED"
        explicit = client.post(f"/api/v1/runs/{original}/retry", json={"version": "original"})
        assert client.get(f"/api/v1/runs/{explicit.json()['id']}").json()["version"] == 1

    @pytest.mark.parametrize("body", [{"version": "latest"}, {"version": 2}, {"other": 1}])
    def test_a_bad_version_is_422_and_nothing_is_opened(
        self, client: TestClient, runtime: Runtime, body: dict
    ) -> None:
        original = _failed_run(client, runtime)
        response = client.post(f"/api/v1/runs/{original}/retry", json=body)
        assert response.status_code == 422
        assert client.get("/api/v1/runs").json()["counts"]["ALL"] == 1

    def test_original_lists_its_retries(self, client: TestClient, runtime: Runtime) -> None:
        original = _failed_run(client, runtime)
        first = client.post(f"/api/v1/runs/{original}/retry").json()["id"]
        second = client.post(f"/api/v1/runs/{original}/retry").json()["id"]

        detail = client.get(f"/api/v1/runs/{original}").json()

        assert [(c["id"], c["relation"]) for c in detail["children"]] == [
            (first, "retry"), (second, "retry")]
        assert detail["original"] is None

    def test_retry_of_a_retry_links_to_the_run_it_retries(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        original = _failed_run(client, runtime)
        first = client.post(f"/api/v1/runs/{original}/retry").json()["id"]
        drain(runtime)

        second = client.post(f"/api/v1/runs/{first}/retry").json()

        assert second["retry_of"] == first

    @pytest.mark.parametrize("ending", ["completed", "canceled"])
    def test_completed_and_canceled_runs_can_be_retried(
        self, client: TestClient, runtime: Runtime, ending: str
    ) -> None:
        create(client, straight())
        run_id = trigger(client, "onboarding")
        if ending == "completed":
            drain(runtime)
        else:
            client.post(f"/api/v1/runs/{run_id}/cancel")

        response = client.post(f"/api/v1/runs/{run_id}/retry")

        assert response.status_code == 202
        assert response.json()["retry_of"] == run_id

    def test_run_without_contact_is_retried_without_one(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        create(client, rejecting())
        original = trigger(client, "rejecter", contact=None, event={"reason": "x"})
        drain(runtime)

        retry_id = client.post(f"/api/v1/runs/{original}/retry").json()["id"]

        assert client.get(f"/api/v1/runs/{retry_id}").json()["contact"] is None

    def test_pending_run_is_409(self, client: TestClient) -> None:
        create(client, straight())
        run_id = trigger(client, "onboarding")

        response = client.post(f"/api/v1/runs/{run_id}/retry")

        assert response.status_code == 409
        assert response.json()["error"]["code"] == "Conflict"
        assert "PENDING" in response.json()["error"]["message"]

    def test_parked_run_is_409_and_nothing_is_opened(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        create(client, waiting())
        run_id = trigger(client, "drip")
        drain(runtime)

        response = client.post(f"/api/v1/runs/{run_id}/retry")

        assert response.status_code == 409
        assert len(client.get("/api/v1/runs").json()["items"]) == 1

    def test_deactivated_workflow_still_accepts_a_retry(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        original = _failed_run(client, runtime)
        client.post("/api/v1/workflows/rejecter/deactivate")

        response = client.post(f"/api/v1/runs/{original}/retry")
        drain(runtime)

        assert response.status_code == 202
        retry = client.get(f"/api/v1/runs/{response.json()['id']}").json()
        assert retry["status"] == "FAILED"  # it ran: the STOP_ERROR node was reached
        assert retry["steps"][-1]["node_id"] == "stop"
        # while new triggers of the deactivated workflow are still refused
        refused = client.post("/api/v1/workflows/rejecter/runs", json={})
        assert refused.status_code == 409

    def test_records_an_audit_event(
        self, client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        original = _failed_run(client, runtime)

        retry_id = client.post(f"/api/v1/runs/{original}/retry").json()["id"]

        with session_scope(runtime.sessions) as session:
            events = list(session.scalars(select(AuditEvent).where(
                AuditEvent.workspace_id == workspace.id, AuditEvent.action == "run.retry")))
        assert [(e.target_type, e.target_id, e.detail) for e in events] == [
            ("run", original, {"retry_run_id": retry_id, "version": "original"})]
        assert events[0].actor == f"key:{workspace.api_key.split('.')[0]}"

    def test_viewer_is_403_and_nothing_is_opened(
        self, client: TestClient, viewer_client: TestClient, runtime: Runtime
    ) -> None:
        original = _failed_run(client, runtime)

        response = viewer_client.post(f"/api/v1/runs/{original}/retry")

        assert response.status_code == 403
        assert client.get(f"/api/v1/runs/{original}").json()["children"] == []

    def test_another_workspace_run_is_404(
        self, client: TestClient, other_client: TestClient, runtime: Runtime
    ) -> None:
        theirs = _failed_run(other_client, runtime)

        response = client.post(f"/api/v1/runs/{theirs}/retry")

        assert response.status_code == 404
        assert other_client.get(f"/api/v1/runs/{theirs}").json()["children"] == []

    def test_malformed_id_is_404(self, client: TestClient) -> None:
        assert client.post("/api/v1/runs/not-a-run/retry").status_code == 404


class TestLatestRetry:
    """A retried run names its newest retry and that retry's status (DESIGN 8.1)."""

    def test_the_newest_retry_and_its_status_in_the_run_and_the_list(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        original = _failed_run(client, runtime)
        client.post(f"/api/v1/runs/{original}/retry")
        drain(runtime)
        client.post("/api/v1/workflows", json={**rejecting(), "nodes": {"stop": {
            "type": "END"}}})  # fixed: version 2 ends instead of stopping
        newest = client.post(f"/api/v1/runs/{original}/retry", json={"version": "current"})
        pending = {"id": newest.json()["id"], "status": "PENDING"}

        assert client.get(f"/api/v1/runs/{original}").json()["latest_retry"] == pending
        drain(runtime)
        done = {"id": pending["id"], "status": "COMPLETED"}
        assert client.get(f"/api/v1/runs/{original}").json()["latest_retry"] == done
        listed = {r["id"]: r for r in client.get("/api/v1/runs").json()["items"]}
        assert listed[original]["latest_retry"] == done
        assert listed[pending["id"]]["latest_retry"] is None  # a retry, never retried itself
        assert len(listed) == 3

    def test_a_run_never_retried_has_none(self, client: TestClient, runtime: Runtime) -> None:
        original = _failed_run(client, runtime)

        assert client.get(f"/api/v1/runs/{original}").json()["latest_retry"] is None
        assert client.get("/api/v1/runs").json()["items"][0]["latest_retry"] is None

    def test_the_list_reads_the_retries_of_a_page_in_one_query(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        def selects_of_a_page() -> list[str]:
            engine = runtime.sessions.kw["bind"]
            statements: list[str] = []

            def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
                if statement.lstrip().upper().startswith("SELECT"):
                    statements.append(statement)

            event.listen(engine, "before_cursor_execute", record)
            try:
                assert client.get("/api/v1/runs").status_code == 200
            finally:
                event.remove(engine, "before_cursor_execute", record)
            return statements

        create(client, rejecting())
        originals = [trigger(client, "rejecter", event={"reason": str(n)}) for n in range(2)]
        drain(runtime)
        client.post(f"/api/v1/runs/{originals[0]}/retry")
        few = selects_of_a_page()
        for n in range(6):
            originals.append(trigger(client, "rejecter", event={"reason": f"more {n}"}))
        drain(runtime)
        for run_id in originals[1:]:
            client.post(f"/api/v1/runs/{run_id}/retry")

        many = selects_of_a_page()

        assert len(many) == len(few)
        assert sum("retry_of IN" in s for s in many) == 1
