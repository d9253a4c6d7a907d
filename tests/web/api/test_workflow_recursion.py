"""Workflows that can start themselves are saved and activated with a warning, and the
workflow page shows it; a deactivation's background cancel shows its progress."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from relayflow.services.runtime import Runtime
from tests.support.worker import drain
from tests.web.api.definitions import create, trigger, waiting


def _triggers(key: str, *targets: str) -> dict[str, Any]:
    nodes: dict[str, Any] = {f"t{i}": {"type": "TRIGGER_WORKFLOW", "workflow": target,
                                       "next": f"t{i + 1}" if i + 1 < len(targets) else "done"}
                             for i, target in enumerate(targets)}
    nodes["done"] = {"type": "END"}
    return {"key": key, "trigger": {"type": "manual"}, "start": "t0" if targets else "done",
            "nodes": nodes}


class TestSelfReachWarning:
    def test_a_workflow_that_triggers_itself_is_saved_with_a_warning(
        self, client: TestClient
    ) -> None:
        response = client.post("/api/v1/workflows", json=_triggers("loop", "loop", "loop"))

        assert response.status_code == 201
        [warning] = response.json()["warnings"]
        assert "'loop' can start itself: loop → loop" in warning
        assert "RELAYFLOW_MAX_TRIGGER_DEPTH" in warning
        assert client.get("/api/v1/workflows/loop").json()["warnings"] == [warning]
        activated = client.post("/api/v1/workflows/loop/activate")
        assert activated.status_code == 200
        assert activated.json()["warnings"] == [warning]

    def test_a_to_b_to_a_warns_on_both(self, client: TestClient) -> None:
        assert client.post("/api/v1/workflows", json=_triggers("b")).json()["warnings"] == []
        assert client.post("/api/v1/workflows",
                           json=_triggers("a", "b")).json()["warnings"] == []

        saved_b = client.post("/api/v1/workflows", json=_triggers("b", "a"))

        [warning] = saved_b.json()["warnings"]
        assert "'b' can start itself: b → a → b" in warning
        [on_a] = client.post("/api/v1/workflows/a/activate").json()["warnings"]
        assert "'a' can start itself: a → b → a" in on_a

    def test_no_warning_without_a_way_back(self, client: TestClient) -> None:
        client.post("/api/v1/workflows", json=_triggers("leaf"))
        response = client.post("/api/v1/workflows", json=_triggers("fan", "leaf", "leaf"))

        assert response.json()["warnings"] == []
        assert client.post("/api/v1/workflows/fan/activate").json()["warnings"] == []

    def test_the_workflow_page_shows_the_warning(
        self, client: TestClient, page_client: TestClient
    ) -> None:
        client.post("/api/v1/workflows", json=_triggers("loop", "loop"))

        page = page_client.get("/workflows/loop").text

        assert "data-warning" in page
        assert "can start itself: loop → loop" in page


class TestCancelProgress:
    def test_the_answer_and_the_workflow_show_the_background_cancel(
        self, client: TestClient, page_client: TestClient, runtime: Runtime
    ) -> None:
        runtime.cancel_batch_size = 2
        create(client, waiting("drip"))
        for _ in range(5):
            trigger(client, "drip")
        drain(runtime)

        answer = client.post("/api/v1/workflows/drip/deactivate").json()

        assert (answer["status"], answer["to_cancel"], answer["canceled"]) == ("INACTIVE", 5, 2)
        assert client.get("/api/v1/workflows/drip").json()["canceling"] == {
            "to_cancel": 5, "canceled": 2}
        page = page_client.get("/workflows/drip").text
        assert 'data-canceling data-canceled="2" data-to-cancel="5"' in page
        assert "Canceling 2 of 5 runs" in page

    def test_nothing_is_shown_when_the_request_canceled_them_all(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        create(client, waiting("drip"))
        trigger(client, "drip")
        drain(runtime)

        answer = client.post("/api/v1/workflows/drip/deactivate").json()

        assert (answer["to_cancel"], answer["canceled"], answer["canceled_runs"]) == (1, 1, 1)
        assert client.get("/api/v1/workflows/drip").json()["canceling"] is None
