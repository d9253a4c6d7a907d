"""Per-webhook rate limits: past the limit a POST is 429 with Retry-After and opens no run."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from relayflow.config import Settings
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import TriggerEvent
from tests.support.rows import all_rows, counter_rows
from tests.web.hooks.conftest import (
    SECRET_NAME,
    hook_definition,
    install_hook,
    run_count,
    signature,
)

LIMIT = 10
NOW = datetime(2030, 1, 1, 12, 0, 15, tzinfo=UTC)  # 45 s before the window closes
ORDER = {"kind": "order"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"rate_limit_webhook_per_minute": LIMIT})


@pytest.fixture(autouse=True)
def pinned_clock(runtime: Runtime) -> None:
    runtime.clock = lambda: NOW


@pytest.fixture
def hook(client: TestClient) -> str:
    return install_hook(client, hook_definition())


def _use_up(anonymous_client: TestClient, path: str, body: dict[str, str] = ORDER) -> None:
    for i in range(LIMIT):
        response = anonymous_client.post(path, json=body)
        assert response.status_code == 202, response.text
        assert response.headers["RateLimit-Remaining"] == str(LIMIT - 1 - i)


class TestWebhookLimit:
    def test_the_post_past_the_limit_is_429_and_opens_no_run(
        self, anonymous_client: TestClient, hook: str, runtime: Runtime
    ) -> None:
        _use_up(anonymous_client, hook)

        response = anonymous_client.post(hook, json=ORDER)

        assert response.status_code == 429
        assert response.headers["Retry-After"] == "45"
        assert response.json()["error"] == {
            "code": "TooManyRequests",
            "message": "This webhook is limited to 10 requests per minute; retry in 45 s.",
            "details": {"retry_after": 45},
        }
        assert run_count(runtime) == LIMIT

    def test_a_refused_request_writes_nothing_but_its_refusal(
        self, anonymous_client: TestClient, client: TestClient, runtime: Runtime
    ) -> None:
        path = install_hook(client, hook_definition(contact={"email": "{{ event.email }}"}))
        _use_up(anonymous_client, path, {**ORDER, "email": "old@example.com"})
        kept = ("rate_counters", "trigger_events")
        before = all_rows(runtime, except_tables=kept)

        response = anonymous_client.post(path, json={**ORDER, "email": "new@example.com"},
                                         headers={"Idempotency-Key": "fresh"})

        assert response.status_code == 429
        assert all_rows(runtime, except_tables=kept) == before  # no run, no contact
        with session_scope(runtime.sessions) as session:
            assert session.execute(select(TriggerEvent.code, TriggerEvent.cause,
                                          TriggerEvent.contact_id)).all() == [
                ("trigger_rejected", "rate_limit", None)]

    def test_another_webhook_is_unaffected(
        self, anonymous_client: TestClient, client: TestClient, hook: str
    ) -> None:
        other = install_hook(client, hook_definition("second"))
        _use_up(anonymous_client, hook)

        assert anonymous_client.post(other, json=ORDER).status_code == 202

    def test_the_next_window_admits_again(
        self, anonymous_client: TestClient, hook: str, runtime: Runtime
    ) -> None:
        _use_up(anonymous_client, hook)
        assert anonymous_client.post(hook, json=ORDER).status_code == 429
        runtime.clock = lambda: NOW + timedelta(seconds=45)

        assert anonymous_client.post(hook, json=ORDER).status_code == 202

    def test_unsigned_requests_count_too(
        self, anonymous_client: TestClient, client: TestClient
    ) -> None:
        client.put(f"/api/v1/secrets/{SECRET_NAME}", json={"value": "whsec-rate"})
        path = install_hook(client, hook_definition(signing_secret=SECRET_NAME))
        for _ in range(LIMIT):
            assert anonymous_client.post(path, json=ORDER).status_code == 401

        body = json.dumps(ORDER).encode()
        signed = {"Relayflow-Signature": signature(body, t=int(NOW.timestamp()),
                                                   secret="whsec-rate"),
                  "Content-Type": "application/json"}
        assert anonymous_client.post(path, content=body, headers=signed).status_code == 429

    def test_an_unknown_token_is_404_and_counts_nothing(
        self, anonymous_client: TestClient, hook: str, runtime: Runtime
    ) -> None:
        for token in ["unknown-token", "x" * 64, "not/a/token"]:
            assert anonymous_client.post(f"/hooks/{token}", json=ORDER).status_code == 404

        assert counter_rows(runtime, "hook:") == 0

    def test_a_rotated_token_keeps_the_workflows_count(
        self, anonymous_client: TestClient, client: TestClient, hook: str
    ) -> None:
        _use_up(anonymous_client, hook)
        client.post("/api/v1/workflows/inbound/webhook/rotate")
        url = client.get("/api/v1/workflows/inbound").json()["webhook_url"]
        rotated = "/hooks/" + url.rsplit("/hooks/", 1)[1]

        assert anonymous_client.post(hook, json=ORDER).status_code == 404
        assert anonymous_client.post(rotated, json=ORDER).status_code == 429


class TestConcurrentWebhooks:
    def test_thirty_parallel_posts_open_exactly_the_limit_of_runs(
        self, hook: str, live_url: str, runtime: Runtime
    ) -> None:
        n = 30
        barrier = threading.Barrier(n)
        answers: list[int] = []
        lock = threading.Lock()

        def fire() -> None:
            with httpx.Client(base_url=live_url, timeout=60) as http:
                barrier.wait()
                status = http.post(hook, json=ORDER).status_code
                with lock:
                    answers.append(status)

        threads = [threading.Thread(target=fire) for _ in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

        assert sorted(answers) == [202] * LIMIT + [429] * (n - LIMIT)
        assert run_count(runtime) == LIMIT
