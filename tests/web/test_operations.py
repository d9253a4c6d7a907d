"""/livez, /readyz and /metrics in the app, on both databases; the scraped text is parsed
with prometheus-client's own parser, and what a webhook and its walked run recorded is
read back from it. Real outages (a database cut, a worker stopped) and the metrics of
separate worker processes: tests/web/test_probes_served.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from relayflow.config import Settings
from relayflow.services import workflow as workflow_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.web.app import create_app
from tests.conftest import TEST_SECRET_KEY, WorkspaceHandle
from tests.support import httpserver
from tests.support.flows import install
from tests.support.worker import drain

HOOK = {"key": "ops-hook",
        "trigger": {"type": "webhook", "contact": {"email": "{{ event.email }}"}},
        "start": "call", "nodes": {
            "call": {"type": "INTEGRATION", "request": {"method": "POST", "url": "URL"},
                     "next": "mail"},
            "mail": {"type": "SEND_MESSAGE", "channel": "email", "subject": "Hi",
                     "body": "Hello", "next": "done"},
            "done": {"type": "END"}}}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by (name, sorted labels)."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


def hook_token(runtime: Runtime, workspace: WorkspaceHandle, url: str) -> str:
    definition: dict[str, Any] = {**HOOK, "nodes": {**HOOK["nodes"], "call": {
        **HOOK["nodes"]["call"], "request": {"method": "POST", "url": url}}}}
    install(runtime, workspace.id, definition)
    with session_scope(runtime.sessions) as session:
        workflow = workflow_service.get(session, workspace_id=workspace.id, key="ops-hook")
        return str(workflow.webhook_token)


def test_live_and_ready_answer_with_each_check(anonymous_client: TestClient) -> None:
    assert anonymous_client.get("/livez").json() == {"ok": True}
    ready = anonymous_client.get("/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["database"] == {"ok": True, "detail": "reachable"}
    assert checks["schema"]["ok"] is True
    assert checks["workers"] == {"ok": True,
                                 "detail": "not checked: this server runs no workers"}


def test_ready_is_503_on_a_database_not_migrated(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'empty.db'}",
                        secret_key=TEST_SECRET_KEY,  # type: ignore[arg-type]
                        secret_key_file=str(tmp_path / "key"))
    with TestClient(create_app(settings)) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["ok"] is False
    assert ready.json()["checks"]["schema"]["ok"] is False
    assert "relayflow migrate" in ready.json()["checks"]["schema"]["detail"]


def test_ready_with_workers_expected_fails_without_a_beat(
        settings: Settings, runtime: Runtime) -> None:
    class Idle:  # a worker that never beats: as one stopped
        def run_forever(self) -> None: ...

        def stop(self) -> None: ...

        def wake(self) -> None: ...

    with TestClient(create_app(settings, runtime=runtime, worker=lambda _: Idle())) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["workers"]["ok"] is False
    assert "no worker beat within 10 s" in ready.json()["checks"]["workers"]["detail"]


def test_metrics_need_the_token_when_one_is_set(settings: Settings, runtime: Runtime) -> None:
    guarded = settings.model_copy(update={"metrics_token": SecretStr("scrape-me")})
    with TestClient(create_app(guarded, runtime=runtime)) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics").headers["www-authenticate"].startswith("Bearer")
        wrong = client.get("/metrics", headers={"Authorization": "Bearer scrape-you"})
        assert wrong.status_code == 401
        right = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert right.status_code == 200
        assert right.headers["content-type"].startswith("text/plain")
        assert "relayflow_database_up 1.0" in right.text


def test_a_webhook_and_its_run_are_counted(
        app: Any, runtime: Runtime, workspace: WorkspaceHandle) -> None:
    target = httpserver.start()
    try:
        token = hook_token(runtime, workspace, target.url + "/crm")
        with TestClient(app) as client:
            before = samples(client.get("/metrics").text)
            accepted = client.post(f"/hooks/{token}", json={"email": "ada@example.com"})
            assert accepted.status_code == 202
            again = client.post(f"/hooks/{token}", json={"email": "ada@example.com"},
                                headers={"Idempotency-Key": "one"})
            client.post(f"/hooks/{token}", json={"email": "ada@example.com"},
                        headers={"Idempotency-Key": "one"})
            assert again.status_code == 202
            assert client.post("/hooks/no-such-token", json={}).status_code == 404
            drain(runtime)
            text = client.get("/metrics").text
    finally:
        target.close()
    after = samples(text)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("relayflow_runs_started_total", workflow="ops-hook", trigger="webhook") == 2
    assert grew("relayflow_runs_finished_total", workflow="ops-hook", status="COMPLETED") == 2
    assert grew("relayflow_run_duration_seconds_count", workflow="ops-hook",
                status="COMPLETED") == 2
    assert grew("relayflow_webhook_requests_total", outcome="accepted", reason="") == 2
    assert grew("relayflow_webhook_requests_total", outcome="duplicate", reason="") == 1
    assert grew("relayflow_webhook_requests_total", outcome="rejected", reason="NotFound") == 1
    for node_type in ("INTEGRATION", "SEND_MESSAGE", "END"):
        assert grew("relayflow_step_duration_seconds_count", node_type=node_type,
                    status="COMPLETED") == 2, node_type
    assert grew("relayflow_delivery_attempts_total", channel="email", provider="outbox",
                status="SENT") == 2
    assert grew("relayflow_claims_total") >= 2
    assert grew("relayflow_http_request_duration_seconds_count", method="POST",
                route="/hooks/{token}", status="202") == 3
    assert value(after, "relayflow_queue_jobs", state="due") == 0
    assert value(after, "relayflow_database_up") == 1
    # Bounded labels: no id, token, address or path with values in any label.
    for (_, labels), _ in after.items():
        for _, label_value in labels:
            assert not UUID.search(label_value), label_value
            assert "@" not in label_value, label_value
            assert token not in label_value
    assert token not in text


def test_queue_gauges_read_the_jobs(
        client: TestClient, runtime: Runtime, workspace: WorkspaceHandle) -> None:
    install(runtime, workspace.id, {"key": "waits", "trigger": {"type": "manual"},
                                    "start": "done", "nodes": {"done": {"type": "END"}}})
    for _ in range(3):
        assert client.post("/api/v1/workflows/waits/runs", json={}).status_code in (201, 202)
    scraped = samples(client.get("/metrics").text)
    assert value(scraped, "relayflow_queue_jobs", state="due") == 3
    assert value(scraped, "relayflow_queue_oldest_due_age_seconds") >= 0
    drain(runtime)
    scraped = samples(client.get("/metrics").text)
    assert value(scraped, "relayflow_queue_jobs", state="due") == 0
    assert value(scraped, "relayflow_queue_oldest_due_age_seconds") == 0


def test_made_up_methods_make_no_new_series(anonymous_client: TestClient) -> None:
    for method in ("FOOBAR1", "FOOBAR2"):
        assert anonymous_client.request(method, "/api/v1/runs").status_code == 405
    text = anonymous_client.get("/metrics").text
    assert "FOOBAR" not in text
    counted = sum(v for (name, labels), v in samples(text).items()
                  if name == "relayflow_http_request_duration_seconds_count"
                  and ("method", "other") in labels)
    assert counted >= 2
