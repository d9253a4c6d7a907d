"""INTEGRATION against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

from sqlalchemy import text

from relayflow.storage.db import session_scope
from relayflow.storage.models import Base
from tests.support.flows import install, run_of, set_secret, start, steps_of
from tests.support.worker import drain

SECRET = "sk_live_canary_7f3a9b2e41d8"


def _flow(url: str, **extra: object) -> dict:
    node = {"type": "INTEGRATION", "request": {
        "method": "POST", "url": url,
        "headers": {"Authorization": "Bearer {{ secrets.CRM_TOKEN }}"},
        "body": {"email": "{{ contact.email }}"}}, "next": "done", **extra}
    return {"key": "crm", "trigger": {"type": "manual"}, "start": "lookup",
            "nodes": {"lookup": node, "done": {"type": "END"}}}


def database_text(runtime) -> str:
    """Every row of every table as text: what a leak check must search."""
    chunks = []
    with session_scope(runtime.sessions) as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(text(f"SELECT * FROM {table.name}")):
                chunks.append(repr(tuple(row)))
    return "\n".join(chunks)


class TestIntegration:
    def test_capture_and_redacted_request(self, runtime, workspace, http_server):
        set_secret(runtime, workspace.id, "CRM_TOKEN", SECRET)
        install(runtime, workspace.id,
                _flow(f"{http_server.url}/json", capture={"tier": "body.account.tier",
                                                          "code": "status"}))
        [run_id] = start(runtime, workspace.id, "crm", email="ann@example.com")
        drain(runtime)
        run = run_of(runtime, run_id)
        assert run.status == "COMPLETED", (run.error, steps_of(runtime, run_id))
        step = steps_of(runtime, run_id)[1]
        assert step.output["tier"] == "gold"
        assert step.output["code"] == 200
        assert step.request["headers"]["Authorization"] == "Bearer [secret:CRM_TOKEN]"
        assert step.response["status"] == 200
        [received] = http_server.requests
        assert received.headers["Authorization"] == f"Bearer {SECRET}"
        assert received.headers["Idempotency-Key"].startswith(f"relayflow-{run_id}")

    def test_secret_appears_nowhere_in_the_database_even_when_echoed(
        self, runtime, workspace, http_server
    ):
        set_secret(runtime, workspace.id, "CRM_TOKEN", SECRET)
        install(runtime, workspace.id, _flow(f"{http_server.url}/echo"))
        [run_id] = start(runtime, workspace.id, "crm", email="ann@example.com")
        drain(runtime)
        assert run_of(runtime, run_id).status == "COMPLETED"
        assert SECRET in http_server.requests[0].headers["Authorization"]
        step = steps_of(runtime, run_id)[1]
        assert "[secret:CRM_TOKEN]" in str(step.response)  # the echo, redacted
        assert SECRET not in database_text(runtime)

    def test_timeout_fails_the_run(self, runtime, workspace, http_server):
        set_secret(runtime, workspace.id, "CRM_TOKEN", SECRET)
        install(runtime, workspace.id, _flow(f"{http_server.url}/slow/2", timeout=0.3))
        [run_id] = start(runtime, workspace.id, "crm", email="ann@example.com")
        drain(runtime)
        run = run_of(runtime, run_id)
        assert run.status == "FAILED"
        assert "timed out after 0.3s" in (run.error or "")

    def test_retries_transient_failures_with_one_idempotency_key(
        self, runtime, workspace, http_server
    ):
        set_secret(runtime, workspace.id, "CRM_TOKEN", SECRET)
        install(runtime, workspace.id, _flow(f"{http_server.url}/flaky/2", retries=2))
        [run_id] = start(runtime, workspace.id, "crm", email="ann@example.com")
        drain(runtime)
        assert run_of(runtime, run_id).status == "COMPLETED"
        assert len(http_server.requests) == 3
        assert len(set(http_server.keys())) == 1
        assert steps_of(runtime, run_id)[1].response["attempts"] == 3

    def test_retries_exhausted_fail_with_the_status(self, runtime, workspace, http_server):
        set_secret(runtime, workspace.id, "CRM_TOKEN", SECRET)
        install(runtime, workspace.id, _flow(f"{http_server.url}/status/503", retries=1))
        [run_id] = start(runtime, workspace.id, "crm", email="ann@example.com")
        drain(runtime)
        run = run_of(runtime, run_id)
        assert run.status == "FAILED"
        assert run.error == "request failed after 2 attempt(s): HTTP 503"

    def test_client_errors_are_not_retried_and_on_error_routes(
        self, runtime, workspace, http_server
    ):
        set_secret(runtime, workspace.id, "CRM_TOKEN", SECRET)
        flow = _flow(f"{http_server.url}/status/404", retries=3, on_error="fallback")
        flow["nodes"]["fallback"] = {"type": "END"}
        install(runtime, workspace.id, flow)
        [run_id] = start(runtime, workspace.id, "crm", email="ann@example.com")
        drain(runtime)
        assert run_of(runtime, run_id).status == "COMPLETED"
        assert len(http_server.requests) == 1
        assert [s.node_id for s in steps_of(runtime, run_id)] == ["trigger", "lookup", "fallback"]

    def test_connection_refused_fails_the_run(self, runtime, workspace):
        set_secret(runtime, workspace.id, "CRM_TOKEN", SECRET)
        install(runtime, workspace.id, _flow("http://127.0.0.1:9/nothing"))
        [run_id] = start(runtime, workspace.id, "crm", email="ann@example.com")
        drain(runtime)
        run = run_of(runtime, run_id)
        assert run.status == "FAILED"
        assert "ConnectError" in (run.error or "")
