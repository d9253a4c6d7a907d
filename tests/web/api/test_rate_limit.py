"""Per-API-key rate limits: past the limit a request is 429 with Retry-After and does nothing.

The app's clock is pinned inside one window (runtime.clock), so a test never straddles a
minute boundary, and moved on to show the next window admits again."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from relayflow.config import Settings
from relayflow.services.runtime import Runtime
from tests.conftest import WorkspaceHandle
from tests.support.rows import all_rows, counter_rows

LIMIT = 10
NOW = datetime(2030, 1, 1, 12, 0, 15, tzinfo=UTC)  # 45 s before the window closes


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"rate_limit_api_per_minute": LIMIT})


@pytest.fixture(autouse=True)
def pinned_clock(runtime: Runtime) -> None:
    runtime.clock = lambda: NOW


def _use_up(client: TestClient, n: int = LIMIT) -> None:
    for i in range(n):
        response = client.get("/api/v1/workflows")
        assert response.status_code == 200, response.text
        assert response.headers["RateLimit-Remaining"] == str(LIMIT - 1 - i)


class TestApiKeyLimit:
    def test_the_request_past_the_limit_is_429_with_retry_after(
        self, client: TestClient
    ) -> None:
        _use_up(client)

        response = client.get("/api/v1/workflows")

        assert response.status_code == 429
        assert response.headers["Retry-After"] == "45"
        body = response.json()
        assert body["error"]["code"] == "TooManyRequests"
        assert "10 requests per minute" in body["error"]["message"]
        assert body["error"]["details"] == {"retry_after": 45}

    def test_admitted_requests_carry_the_limit_headers(self, client: TestClient) -> None:
        response = client.get("/api/v1/workflows")

        assert response.headers["RateLimit-Limit"] == str(LIMIT)
        assert response.headers["RateLimit-Remaining"] == str(LIMIT - 1)
        assert response.headers["RateLimit-Reset"] == "45"

    def test_retry_after_counts_down_to_the_end_of_the_window(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        _use_up(client)
        # Whole seconds, rounded up: never 0, never past the window's end.
        for second, expected in [(0, 60), (30, 30), (59, 1)]:
            runtime.clock = lambda s=second: NOW.replace(second=s, microsecond=500_000)
            response = client.get("/api/v1/workflows")

            assert response.status_code == 429
            assert response.headers["Retry-After"] == str(expected)

    def test_another_key_of_the_same_workspace_is_unaffected(
        self, client: TestClient, viewer_client: TestClient
    ) -> None:
        _use_up(client)
        assert client.get("/api/v1/workflows").status_code == 429

        assert viewer_client.get("/api/v1/workflows").status_code == 200

    def test_the_next_window_admits_again(self, client: TestClient, runtime: Runtime) -> None:
        _use_up(client)
        refused = client.get("/api/v1/workflows")
        runtime.clock = lambda: NOW + timedelta(seconds=int(refused.headers["Retry-After"]))

        assert client.get("/api/v1/workflows").status_code == 200

    def test_hammering_past_the_limit_does_not_reopen_it(self, client: TestClient) -> None:
        _use_up(client)

        answers = [client.get("/api/v1/workflows").status_code for _ in range(20)]

        assert answers == [429] * 20

    def test_a_refused_request_writes_nothing(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        _use_up(client)
        before = all_rows(runtime)

        response = client.post("/api/v1/contacts", json={"email": "ada@example.com"})

        assert response.status_code == 429
        assert all_rows(runtime) == before  # no contact, no audit event, no key touched

    def test_an_unknown_key_is_401_and_counts_nothing(
        self, anonymous_client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        prefix = workspace.api_key.split(".")[0]
        for token in ["rf_nope.secret", f"{prefix}.wrong-secret", "garbage"]:
            response = anonymous_client.get("/api/v1/workflows",
                                            headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401

        assert counter_rows(runtime) == 0

    def test_a_limit_of_zero_turns_it_off(
        self, settings: Settings, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        from relayflow.web.app import create_app

        app = create_app(settings.model_copy(update={"rate_limit_api_per_minute": 0}),
                         runtime=runtime)
        with TestClient(app, headers=workspace.headers) as unlimited:
            answers = [unlimited.get("/api/v1/workflows") for _ in range(LIMIT + 5)]

        assert {a.status_code for a in answers} == {200}
        assert "RateLimit-Limit" not in answers[0].headers
        assert counter_rows(runtime) == 0


class TestConcurrentApiRequests:
    def test_thirty_parallel_requests_admit_exactly_the_limit(
        self, app: FastAPI, live_url: str, workspace: WorkspaceHandle
    ) -> None:
        n = 30
        barrier = threading.Barrier(n)
        answers: list[int] = []
        lock = threading.Lock()

        def fire() -> None:
            with httpx.Client(base_url=live_url, headers=workspace.headers, timeout=60) as http:
                barrier.wait()
                status = http.get("/api/v1/workflows").status_code
                with lock:
                    answers.append(status)

        threads = [threading.Thread(target=fire) for _ in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

        assert sorted(answers) == [200] * LIMIT + [429] * (n - LIMIT)
