"""The workflows pages: the list with last-24h run counts, one workflow, and its actions."""

from __future__ import annotations

import html
import re
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import func, select

from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import Contact, Workflow, WorkflowRun
from tests.support import httpserver
from tests.support.flows import install, run_of, set_secret
from tests.support.pages import csrf_token
from tests.support.seed import Seeded, seed

OUTCOMES = ("completed", "failed", "running", "canceled")
HOOK = {
    "key": "signup-hook", "name": "Signup hook",
    "trigger": {"type": "webhook", "signing_secret": "HOOK_SECRET",
                "contact": {"email": "{{ event.user.email }}"}},
    "start": "done", "nodes": {"done": {"type": "END"}},
}
HOOK_SECRET_VALUE = "whsec-canary-91b2"
DIGEST = {
    "key": "digest", "name": "Weekly digest",
    "trigger": {"type": "schedule", "cron": "0 9 * * 1", "timezone": "Europe/Paris",
                "audience": "contact.plan == 'pro'"},
    "start": "done", "nodes": {"done": {"type": "END"}},
}


@pytest.fixture
def seeded(runtime: Runtime, workspace: Any, http_server: httpserver.TestHttpServer) -> Seeded:
    return seed(runtime, workspace.id, http_url=http_server.url)


def row_of(page: str, key: str) -> str:
    found = re.search(rf'<tr data-workflow="{re.escape(key)}">(.*?)</tr>', page, re.S)
    assert found, f"no row for {key}"
    return found.group(1)


def counts_in(row: str) -> dict[str, int]:
    cells = re.findall(r'data-outcome="(\w+)">\s*<a[^>]*>(\d+)</a>', row)
    return {outcome: int(n) for outcome, n in cells}


def post(client: TestClient, path: str, data: dict[str, str] | None = None,
         *, via_form: bool = True) -> Any:
    """POST like the page's own form does: with the CSRF token that form carries (or, for
    a role shown no form, the session's token from the page's meta tag)."""
    if via_form:
        found = re.match(r"/workflows/[^/]+", path)
        assert found
        page = client.get(found.group(0)).text
        form = re.search(rf'<form method="post" action="{re.escape(path)}"[^>]*>\s*'
                         r'<input type="hidden" name="csrf_token" value="([^"]*)"', page)
        assert form, f"the page has no form posting to {path}"
        token = form.group(1)
    else:
        token = csrf_token(client, "/workflows")
    return client.post(path, data={"csrf_token": token, **(data or {})},
                       follow_redirects=False)


def in_flight(runtime: Runtime, key: str) -> list[str]:
    with session_scope(runtime.sessions) as session:
        return list(session.scalars(
            select(WorkflowRun.status).join(Workflow, Workflow.id == WorkflowRun.workflow_id)
            .where(Workflow.key == key, WorkflowRun.status.in_(("PENDING", "RUNNING")))))


def run_count(runtime: Runtime) -> int:
    with session_scope(runtime.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(WorkflowRun)) or 0)


def new_run_id(response: Any) -> uuid.UUID:
    assert response.status_code == 303, response.text
    found = re.fullmatch(r"/runs/([0-9a-f-]{36})", response.headers["location"])
    assert found, response.headers["location"]
    return uuid.UUID(found.group(1))


class TestList:
    def test_every_workflow_with_its_last_24h_counts(
        self, page_client: TestClient, seeded: Seeded
    ) -> None:
        response = page_client.get("/workflows")
        assert response.status_code == 200
        assert response.template.name == "workflows/list.html"  # type: ignore[attr-defined]
        page = response.text
        expected = {
            "lead-check": {"completed": 1, "failed": 0, "running": 0, "canceled": 0},
            "nurture": {"completed": 0, "failed": 0, "running": 2, "canceled": 1},
            "payment-failed": {"completed": 0, "failed": 1, "running": 0, "canceled": 0},
            "welcome": {"completed": 3, "failed": 0, "running": 0, "canceled": 0},
        }
        assert re.findall(r'<tr data-workflow="([\w-]+)">', page) == sorted(expected)
        for key, counts in expected.items():
            row = row_of(page, key)
            assert counts_in(row) == counts, key
            assert f'href="/workflows/{key}"' in row
            assert 'data-status="ACTIVE"' in row
            assert "Manual" in row
            assert "v1" in row
            for outcome in OUTCOMES:
                link = f'href="/runs?workflow={key}&amp;range=24h&amp;status={outcome}"'
                assert link in row, (key, outcome)

    def test_counts_come_from_one_query_whatever_the_number_of_workflows(
        self, page_client: TestClient, seeded: Seeded, runtime: Runtime, workspace: Any,
        app: Any,
    ) -> None:
        from sqlalchemy import event

        engine = runtime.sessions.kw["bind"]
        statements: list[str] = []

        def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            statements.append(statement)

        event.listen(engine, "before_cursor_execute", record)
        try:
            page_client.get("/workflows")
            first = len(statements)
            for n in range(3):
                install(runtime, workspace.id, {**DIGEST, "key": f"extra-{n}"})
            statements.clear()
            page_client.get("/workflows")
        finally:
            event.remove(engine, "before_cursor_execute", record)
        assert len(statements) == first
        assert sum("workflow_runs" in s for s in statements) == 1

    def test_a_new_version_and_a_draft_show_as_such(
        self, page_client: TestClient, runtime: Runtime, workspace: Any, members: Any
    ) -> None:
        install(runtime, workspace.id, DIGEST)
        install(runtime, workspace.id, {**DIGEST, "name": "Weekly digest 2"})
        install(runtime, workspace.id, HOOK | {"key": "drafty"}, activate=False)
        page = page_client.get("/workflows").text
        assert "v2" in row_of(page, "digest")
        assert "Weekly digest 2" in row_of(page, "digest")
        assert 'data-status="DRAFT"' in row_of(page, "drafty")
        assert counts_in(row_of(page, "drafty")) == dict.fromkeys(OUTCOMES, 0)

    def test_an_empty_workspace_says_how_to_add_a_workflow(self, page_client: TestClient) -> None:
        page = page_client.get("/workflows").text
        assert "No workflows yet" in page
        assert "relayflow apply" in page
        assert "/api/v1/workflows" in page
        assert "<table" not in page


class TestDetail:
    def test_header_graph_versions_and_links(
        self, page_client: TestClient, seeded: Seeded, runtime: Runtime, workspace: Any
    ) -> None:
        changed = {"key": "nurture", "name": "Nurture drip", "trigger": {"type": "manual"},
                   "start": "hello", "nodes": {
                       "hello": {"type": "UPDATE_CONTACT", "set": {"stage": "n2"},
                                 "next": "done"},
                       "done": {"type": "END"}}}
        install(runtime, workspace.id, changed)
        response = page_client.get("/workflows/nurture")
        assert response.status_code == 200
        assert response.template.name == "workflows/detail.html"  # type: ignore[attr-defined]
        page = response.text
        assert page.count("<h1>") == 1
        assert "<h1>Nurture drip</h1>" in page
        assert "data-current-version>2<" in page
        graph = page[page.index('<div class="graph">'):]
        svg = graph[:graph.index("</svg>")]
        assert 'data-node="hello"' in svg
        assert 'data-node="done"' in svg
        assert 'data-node="pause"' not in svg  # the graph is the current version's
        assert re.findall(r'data-version="(\d+)"', page) == ["2", "1"]
        assert page.count("Current</span>") == 1
        assert "&#34;stage&#34;: &#34;n2&#34;" in page
        assert "&#34;duration&#34;: &#34;3d&#34;" in page
        assert 'href="/runs?workflow=nurture"' in page
        assert 'href="/delivery-ops?workflow=nurture"' in page
        assert re.search(r'data-outcome="running"[^>]*><strong>2</strong>', page)

    def test_a_webhook_shows_its_url_copy_button_and_signing_but_no_secret(
        self, page_client: TestClient, runtime: Runtime, workspace: Any
    ) -> None:
        set_secret(runtime, workspace.id, "HOOK_SECRET", HOOK_SECRET_VALUE)
        install(runtime, workspace.id, HOOK)
        with session_scope(runtime.sessions) as session:
            token = session.scalar(select(Workflow.webhook_token)
                                   .where(Workflow.key == "signup-hook"))
        page = page_client.get("/workflows/signup-hook").text
        url = f"http://testserver/hooks/{token}"
        assert re.search(rf'<input id="webhook-url" type="text" readonly value="{url}"', page)
        assert '<button type="button" class="btn" data-copy="webhook-url"' in page
        assert "Signing" in page
        assert "On: requests need a Relayflow-Signature" in page
        assert "HOOK_SECRET" in page
        assert HOOK_SECRET_VALUE not in page
        assert "data-signing-missing" not in page
        assert str(escape('"user": {"email": "ada@example.com"}')) in page
        assert "Relayflow-Signature: t=$ts,v1=$sig" in page

    def test_a_webhook_url_uses_the_public_url_and_warns_of_a_missing_secret(
        self, app: Any, page_client: TestClient, runtime: Runtime, workspace: Any
    ) -> None:
        app.state.settings.public_url = "https://relay.example.com/"
        install(runtime, workspace.id, HOOK, activate=False)
        page = page_client.get("/workflows/signup-hook").text
        assert 'value="https://relay.example.com/hooks/' in page
        assert "data-signing-missing" in page

    def test_a_schedule_shows_the_same_next_five_fire_times_as_the_api(
        self, page_client: TestClient, client: TestClient, runtime: Runtime, workspace: Any
    ) -> None:
        install(runtime, workspace.id, DIGEST)
        page = page_client.get("/workflows/digest").text
        api = client.get("/api/v1/workflows/digest").json()
        expected = [t.replace("Z", "+00:00") for t in api["next_fire_times"]]
        assert len(expected) == 5
        assert re.findall(r'data-fire="([^"]+)"', page) == expected
        assert "0 9 * * 1" in page
        assert "Europe/Paris" in page
        assert "contact.plan == &#39;pro&#39;" in page
        assert "Mon " in page
        assert " 09:00 CE" in page

    def test_an_upstream_workflow_names_the_workflows_that_start_it(
        self, page_client: TestClient, runtime: Runtime, workspace: Any, members: Any
    ) -> None:
        install(runtime, workspace.id, {"key": "child", "name": "Child",
                                        "trigger": {"type": "upstream"}, "start": "done",
                                        "nodes": {"done": {"type": "END"}}})
        install(runtime, workspace.id, {"key": "parent", "name": "Parent", "start": "go",
                                        "nodes": {"go": {"type": "TRIGGER_WORKFLOW",
                                                         "workflow": "child", "next": "done"},
                                                  "done": {"type": "END"}}})
        page = page_client.get("/workflows/child").text
        assert re.search(r'<ul class="started-by">\s*<li><a href="/workflows/parent">Parent</a>',
                         page)

    def test_unknown_and_other_workspaces_keys_are_404(
        self, page_client: TestClient, outsider_page_client: TestClient, seeded: Seeded
    ) -> None:
        assert page_client.get("/workflows/nope").status_code == 404
        response = outsider_page_client.get("/workflows/nurture")
        assert response.status_code == 404
        assert "Nurture drip" not in response.text
        token = csrf_token(outsider_page_client, "/workflows")
        refused = outsider_page_client.post("/workflows/nurture/deactivate",
                                            data={"csrf_token": token}, follow_redirects=False)
        assert refused.status_code == 404


class TestActivation:
    def test_the_deactivate_dialog_counts_in_flight_runs_and_the_post_cancels_them(
        self, operator_page_client: TestClient, seeded: Seeded, runtime: Runtime
    ) -> None:
        page = operator_page_client.get("/workflows/nurture").text
        dialog = page[page.index('<dialog id="deactivate-dialog"'):]
        dialog = dialog[:dialog.index("</dialog>")]
        assert "cancels 2 in-flight runs (pending or running)" in dialog
        assert 'action="/workflows/nurture/deactivate"' in dialog
        response = post(operator_page_client, "/workflows/nurture/deactivate")
        assert response.status_code == 303
        assert response.headers["location"] == "/workflows/nurture?notice=deactivated&canceled=2"
        assert in_flight(runtime, "nurture") == []
        for label in ("nurture_ada", "nurture_linus"):
            assert run_of(runtime, seeded.runs[label]).status == "CANCELED"
        after = operator_page_client.get(response.headers["location"]).text
        assert "Deactivated: 2 in-flight runs canceled" in after
        assert 'data-status="INACTIVE"' in after
        assert 'id="activate-dialog"' in after
        assert 'id="deactivate-dialog"' not in after

    def test_with_nothing_in_flight_the_dialog_says_so(
        self, page_client: TestClient, seeded: Seeded
    ) -> None:
        page = page_client.get("/workflows/welcome").text
        assert "No run is in flight, so none will be canceled." in page

    def test_activate(self, page_client: TestClient, runtime: Runtime, workspace: Any,
                      members: Any) -> None:
        install(runtime, workspace.id, DIGEST, activate=False)
        page = page_client.get("/workflows/digest").text
        assert 'data-status="DRAFT"' in page
        assert 'id="activate-dialog"' in page
        response = post(page_client, "/workflows/digest/activate")
        assert response.headers["location"] == "/workflows/digest?notice=activated"
        after = page_client.get(response.headers["location"]).text
        assert 'data-status="ACTIVE"' in after
        assert "Activated: new runs can start." in after

    def test_rotating_the_webhook_changes_its_url(
        self, page_client: TestClient, runtime: Runtime, workspace: Any
    ) -> None:
        install(runtime, workspace.id, HOOK | {"trigger": {"type": "webhook"}})
        before = re.findall(r'value="(http://testserver/hooks/[^"]+)"',
                            page_client.get("/workflows/signup-hook").text)
        response = post(page_client, "/workflows/signup-hook/webhook/rotate")
        assert response.headers["location"] == "/workflows/signup-hook?notice=rotated"
        after = re.findall(r'value="(http://testserver/hooks/[^"]+)"',
                           page_client.get("/workflows/signup-hook").text)
        assert len(before) == len(after) == 1
        assert before != after


class TestRunNow:
    def test_an_email_starts_a_run_for_that_contact(
        self, operator_page_client: TestClient, seeded: Seeded, runtime: Runtime
    ) -> None:
        response = post(operator_page_client, "/workflows/welcome/runs",
                        {"contact": " Ada@Example.com ", "event": '{"plan": "pro"}'})
        run = run_of(runtime, new_run_id(response))
        assert run.contact_id == seeded.contacts["ada"]
        assert run.trigger_type == "manual"
        assert run.trigger_payload == {"plan": "pro"}

    def test_a_phone_finds_the_contact_and_a_new_address_creates_one(
        self, page_client: TestClient, seeded: Seeded, runtime: Runtime
    ) -> None:
        by_phone = run_of(runtime, new_run_id(post(
            page_client, "/workflows/welcome/runs", {"contact": "+1 415-555-0101"})))
        assert by_phone.contact_id == seeded.contacts["ada"]
        assert by_phone.trigger_payload == {}
        fresh = run_of(runtime, new_run_id(post(
            page_client, "/workflows/welcome/runs", {"contact": "+44 20 7946 0958"})))
        with session_scope(runtime.sessions) as session:
            contact = session.get(Contact, fresh.contact_id)
            assert contact is not None
            assert contact.phone == "+442079460958"

    @pytest.mark.parametrize(("event", "message"), [
        ('{"plan": ', "The event is not valid JSON"),
        ("[1, 2]", "The event must be a JSON object, not an array."),
    ])
    def test_a_malformed_event_is_refused_inline_and_starts_nothing(
        self, page_client: TestClient, seeded: Seeded, runtime: Runtime, event: str,
        message: str,
    ) -> None:
        before = run_count(runtime)
        response = post(page_client, "/workflows/welcome/runs",
                        {"contact": "new.person@example.com", "event": event})
        assert response.status_code == 422
        assert response.template.name == "workflows/detail.html"  # type: ignore[attr-defined]
        error = re.search(r'<div class="alert alert-error" role="alert" id="run-now-error">'
                          r'([^<]*)</div>', response.text)
        assert error
        assert message in html.unescape(error.group(1))
        assert str(escape(event)) in response.text  # what was typed is kept
        assert run_count(runtime) == before
        with session_scope(runtime.sessions) as session:
            assert session.scalar(select(Contact).where(
                Contact.email == "new.person@example.com")) is None

    def test_an_invalid_contact_is_refused_inline(
        self, page_client: TestClient, seeded: Seeded, runtime: Runtime
    ) -> None:
        before = run_count(runtime)
        response = post(page_client, "/workflows/welcome/runs", {"contact": "not a phone"})
        assert response.status_code == 422
        assert 'id="run-now-error"' in response.text
        assert run_count(runtime) == before

    def test_an_inactive_workflow_cannot_be_run(
        self, page_client: TestClient, runtime: Runtime, workspace: Any, members: Any
    ) -> None:
        install(runtime, workspace.id, DIGEST, activate=False)
        page = page_client.get("/workflows/digest").text
        assert "<fieldset disabled>" in page
        assert "activate it before starting runs" in page
        response = post(page_client, "/workflows/digest/runs", {"contact": "ada@example.com"})
        assert response.status_code == 409
        assert "is DRAFT; activate it to start runs" in response.text
        assert run_count(runtime) == 0
        with session_scope(runtime.sessions) as session:
            assert session.scalar(select(func.count()).select_from(Contact)) == 0


class TestPermissions:
    def test_a_viewer_sees_no_actions_and_its_posts_are_refused(
        self, viewer_page_client: TestClient, seeded: Seeded, runtime: Runtime
    ) -> None:
        page = viewer_page_client.get("/workflows/nurture").text
        assert "<dialog" not in page
        assert 'id="run-now"' not in page
        assert "Deactivate" not in page
        assert "Run now" not in page
        assert "Runs of this workflow" in page
        for path, data in [("/workflows/nurture/deactivate", {}),
                           ("/workflows/welcome/runs", {"contact": "ada@example.com"})]:
            response = post(viewer_page_client, path, data, via_form=False)
            assert response.status_code == 403
        assert len(in_flight(runtime, "nurture")) == 2

    def test_a_post_without_the_csrf_token_is_refused(
        self, page_client: TestClient, seeded: Seeded, runtime: Runtime
    ) -> None:
        before = run_count(runtime)
        for path in ("/workflows/nurture/deactivate", "/workflows/welcome/runs"):
            response = page_client.post(path, data={"contact": "ada@example.com"},
                                        follow_redirects=False)
            assert response.status_code == 403
            wrong = page_client.post(path, data={"contact": "ada@example.com",
                                                 "csrf_token": "forged"},
                                     follow_redirects=False)
            assert wrong.status_code == 403
        assert len(in_flight(runtime, "nurture")) == 2
        assert run_count(runtime) == before
