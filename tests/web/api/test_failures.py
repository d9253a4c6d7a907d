"""GET /api/v1/failures and GET /api/v1/runs?fingerprint=: failures grouped by cause."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi.testclient import TestClient

from relayflow.services.runtime import Runtime
from tests.support.worker import drain
from tests.web.api.definitions import create, rejecting, straight, trigger


def _reject(client: TestClient, runtime: Runtime, reasons: list[str]) -> list[str]:
    ids = [trigger(client, "rejecter", event={"reason": r},
                   contact={"email": f"c{n}@example.com"}) for n, r in enumerate(reasons)]
    drain(runtime)
    return ids


class TestFailures:
    def test_one_group_per_cause_with_its_runs(self, client: TestClient,
                                               runtime: Runtime) -> None:
        create(client, rejecting())
        create(client, straight())
        ids = _reject(client, runtime, ["order 4417 'card declined'", "order 9 'card expired'"])
        trigger(client, "onboarding")
        drain(runtime)

        response = client.get("/api/v1/failures")

        assert response.status_code == 200, response.text
        [group] = response.json()["items"]
        assert group["kind"] == "run"
        assert (group["workflow"], group["node_id"], group["node_type"]) == (
            "rejecter", "stop", "STOP_ERROR")
        assert group["error_class"] == "StopError"
        assert group["pattern"] == "Rejected: order <number> <quoted>"
        assert group["sample_error"].startswith("Rejected: order ")
        assert (group["count"], group["unresolved"]) == (2, 2)
        assert sum(group["sparkline"]) == 2
        body = response.json()
        assert body["sparkline_hours"] == 6  # 7 days in bars of 6 hours
        bar = timedelta(hours=6)
        origin, start, end = (datetime.fromisoformat(body[k]) for k in (
            "sparkline_start", "range_start", "range_end"))
        assert origin <= start < origin + bar
        assert origin + (len(group["sparkline"]) - 1) * bar < end <= origin + len(
            group["sparkline"]) * bar
        last = datetime.fromisoformat(group["last_seen"])
        assert group["sparkline"][(last - origin) // bar] >= 1
        assert group["first_seen"] <= group["last_seen"]
        runs = client.get("/api/v1/runs", params={"fingerprint": group["fingerprint"]}).json()
        assert sorted(r["id"] for r in runs["items"]) == sorted(ids)
        assert {r["fingerprint"] for r in runs["items"]} == {group["fingerprint"]}
        assert (runs["counts"]["ALL"], runs["counts"]["FAILED"]) == (2, 2)

    def test_a_retry_that_completes_resolves_one(self, client: TestClient,
                                                 runtime: Runtime) -> None:
        create(client, rejecting())
        first, _ = _reject(client, runtime, ["order 1", "order 2"])
        create(client, {**straight(), "key": "rejecter"})  # the fix, as version 2
        retry = client.post(f"/api/v1/runs/{first}/retry", json={"version": "current"})
        drain(runtime)
        assert client.get(f"/api/v1/runs/{retry.json()['id']}").json()["status"] == "COMPLETED"
        [group] = client.get("/api/v1/failures").json()["items"]
        assert (group["count"], group["unresolved"]) == (2, 1)

    def test_filters(self, client: TestClient, runtime: Runtime) -> None:
        create(client, rejecting())
        _reject(client, runtime, ["a"])
        assert len(client.get("/api/v1/failures?kind=run&workflow=rejecter&range=24h")
                   .json()["items"]) == 1
        assert client.get("/api/v1/failures?kind=delivery").json()["items"] == []
        assert client.get("/api/v1/failures?workflow=nope").json()["items"] == []
        assert client.get("/api/v1/failures?to=2020-01-01T00:00:00Z").json()["items"] == []

    def test_bad_input_is_422(self, client: TestClient) -> None:
        for query in ("kind=runs", "range=2d", "range=24h&from=2026-01-01T00:00:00Z",
                      "limit=0", "cursor=nope", "from=2030-01-01T00:00:00Z"):
            response = client.get(f"/api/v1/failures?{query}")
            assert response.status_code == 422, (query, response.text)
        response = client.get("/api/v1/runs?fingerprint=xyz")
        assert response.status_code == 422
        assert "16 hexadecimal digits" in response.text

    def test_another_workspace_sees_none(self, client: TestClient, runtime: Runtime,
                                         other_client: TestClient) -> None:
        create(client, rejecting())
        _reject(client, runtime, ["a"])
        [group] = client.get("/api/v1/failures").json()["items"]
        assert other_client.get("/api/v1/failures").json()["items"] == []
        other = other_client.get("/api/v1/runs", params={"fingerprint": group["fingerprint"]})
        assert other.json()["items"] == []


def test_a_range_reaching_centuries_back_is_answered(client: TestClient) -> None:
    """Bars counted from 1736 outgrow INTEGER on PostgreSQL: counted as BIGINT."""
    answer = client.get("/api/v1/failures", params={
        "from": "1736-03-09T14:58:53-02:55", "to": "2024-06-01T07:00:00Z"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["items"] == []
