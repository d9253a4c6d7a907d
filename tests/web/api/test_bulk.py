"""/api/v1/bulk-operations: dry run, create, follow, list, cancel."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from relayflow.services import bulk
from relayflow.services.runtime import Runtime
from tests.support.worker import drain
from tests.web.api.definitions import create, rejecting, trigger


def _failed(client: TestClient, runtime: Runtime, n: int = 3) -> list[str]:
    create(client, rejecting())
    ids = [trigger(client, "rejecter", event={"reason": f"order {i}"},
                   contact={"email": f"c{i}@example.com"}) for i in range(n)]
    drain(runtime)
    return ids


def _body(**over) -> dict:
    return {"action": "retry", "filter": {"status": "FAILED", "workflow": "rejecter"}, **over}


class TestBulkOperations:
    def test_the_dry_run_says_what_would_happen_and_writes_nothing(
            self, client: TestClient, runtime: Runtime) -> None:
        ids = _failed(client, runtime)
        response = client.post("/api/v1/bulk-operations", json=_body(dry_run=True))
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["count"], body["acting"], body["skipped"], body["too_many"]) == (
            3, 3, {}, False)
        assert sorted(r["id"] for r in body["sample"]) == sorted(ids)
        assert body["effects"] == {"messages": 0, "integrations": 0, "loops": False}
        assert client.get("/api/v1/bulk-operations").json()["items"] == []

    def test_a_search_picks_the_runs(self, client: TestClient, runtime: Runtime) -> None:
        ids = _failed(client, runtime)
        body = {"action": "retry", "dry_run": True, "filter": {"q": 'reason:"order 1"'}}
        response = client.post("/api/v1/bulk-operations", json=body)
        assert response.status_code == 200, response.text
        assert [r["id"] for r in response.json()["sample"]] == [ids[1]]

    def test_made_followed_and_finished(self, client: TestClient, runtime: Runtime) -> None:
        ids = _failed(client, runtime)
        response = client.post("/api/v1/bulk-operations",
                               json=_body(reason="token renewed", version="current"))
        assert response.status_code == 202, response.text
        made = response.json()
        assert (made["action"], made["version"], made["status"], made["total"], made["done"]) \
            == ("retry", "current", "RUNNING", 3, 0)
        assert made["filter"] == {"status": "FAILED", "workflow": "rejecter"}
        later = runtime.clock() + timedelta(minutes=1)  # well past its pace
        runtime.clock = lambda: later
        while bulk.advance(runtime, worker="w"):
            pass
        followed = client.get(f"/api/v1/bulk-operations/{made['id']}").json()
        assert (followed["status"], followed["done"], followed["skip_reasons"]) == (
            "COMPLETED", 3, {})
        retried = client.get("/api/v1/runs", params={"workflow": "rejecter"}).json()["items"]
        assert sorted(r["retry_of"] for r in retried if r["retry_of"]) == sorted(ids)
        [listed] = client.get("/api/v1/bulk-operations").json()["items"]
        assert listed["id"] == made["id"]
        again = client.post(f"/api/v1/bulk-operations/{made['id']}/cancel")
        assert again.status_code == 409

    def test_cancel_stops_it(self, client: TestClient, runtime: Runtime) -> None:
        _failed(client, runtime)
        made = client.post("/api/v1/bulk-operations", json=_body(rate=0.001)).json()
        response = client.post(f"/api/v1/bulk-operations/{made['id']}/cancel")
        assert response.status_code == 200
        assert response.json()["status"] == "CANCELED"
        assert bulk.advance(runtime, worker="w") == 0

    def test_bad_requests_are_422_and_make_nothing(self, client: TestClient,
                                                   runtime: Runtime) -> None:
        _failed(client, runtime)
        for body, message in (
                ({"action": "delete", "filter": {"status": "FAILED"}}, "action"),
                ({"action": "retry", "filter": {}}, "give at least one filter"),
                ({"action": "retry", "filter": {"colour": "red"}}, "colour"),
                ({"action": "retry", "filter": {"q": 'city:"New'}}, "not closed"),
                ({"action": "cancel", "filter": {"status": "RUNNING"}, "version": "current"},
                 "version is for retries"),
                ({"action": "retry", "filter": {"status": "FAILED"}, "rate": 0}, "rate"),
                ({"action": "retry", "filter": {"status": "SLEEPING"}}, "unknown run status"),
                ({"action": "retry", "filter": {"workflow": "nope"}}, "nothing to do"),
                ({"action": "retry", "filter": {"ids": ["x"]}}, "not a run id")):
            response = client.post("/api/v1/bulk-operations", json=body)
            assert response.status_code == 422, (body, response.text)
            assert message in response.text, (body, response.text)
        assert client.get("/api/v1/bulk-operations").json()["items"] == []

    def test_a_viewer_may_look_but_not_act(self, client: TestClient, runtime: Runtime,
                                           viewer_client: TestClient) -> None:
        _failed(client, runtime)
        assert viewer_client.post("/api/v1/bulk-operations",
                                  json=_body(dry_run=True)).status_code == 403
        made = client.post("/api/v1/bulk-operations", json=_body()).json()
        assert viewer_client.get(f"/api/v1/bulk-operations/{made['id']}").status_code == 200
        assert viewer_client.post(
            f"/api/v1/bulk-operations/{made['id']}/cancel").status_code == 403

    def test_another_workspace_cannot_see_or_touch_it(
            self, client: TestClient, runtime: Runtime, other_client: TestClient) -> None:
        _failed(client, runtime)
        made = client.post("/api/v1/bulk-operations", json=_body()).json()
        assert other_client.get(f"/api/v1/bulk-operations/{made['id']}").status_code == 404
        assert other_client.post(
            f"/api/v1/bulk-operations/{made['id']}/cancel").status_code == 404
        assert other_client.get("/api/v1/bulk-operations").json()["items"] == []
        assert client.get("/api/v1/bulk-operations/nope").status_code == 404
