"""The run detail page (/runs/{id}): facts, trace, graph marks, links, live region, actions."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from relayflow.services import run as run_service
from relayflow.services import workflow as workflow_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import AuditEvent, Job, WorkflowRun
from relayflow.web.pages.templating import short_id
from tests.conftest import WorkspaceHandle
from tests.support.flows import install, run_of
from tests.support.pages import csrf_token
from tests.support.seed import CRM_TOKEN, Seeded, seed
from tests.support.worker import drain
from tests.web.conftest import OPERATOR

PARENT = {
    "key": "onboard", "name": "Onboard", "trigger": {"type": "manual"}, "start": "kick",
    "nodes": {"kick": {"type": "TRIGGER_WORKFLOW", "workflow": "welcome", "next": "done"},
              "done": {"type": "END"}},
}


@pytest.fixture
def seeded(runtime: Runtime, workspace: WorkspaceHandle, http_server: Any) -> Seeded:
    return seed(runtime, workspace.id, http_url=http_server.url)


def open_run(client: TestClient, run_id: uuid.UUID | str) -> str:
    response = client.get(f"/runs/{run_id}")
    assert response.status_code == 200, response.text
    assert response.template.name == "runs/detail.html"  # type: ignore[attr-defined]
    return response.text


def step_html(page: str, seq: int) -> str:
    found = re.search(rf'<li id="step-{seq}".*?</li>', page, re.S)
    assert found, f"no step {seq} in the trace"
    return found.group(0)


def enroll(runtime: Runtime, workspace_id: uuid.UUID, key: str, *, contact: bool = True,
           idempotency_key: str | None = None) -> uuid.UUID:
    """A PENDING run (nothing drains it), for the contact ada unless contact=False."""
    from relayflow.services import contact as contact_service

    with session_scope(runtime.sessions) as session:
        workflow = workflow_service.get(session, workspace_id=workspace_id, key=key)
        who = (contact_service.find_by_address(session, workspace_id=workspace_id,
                                               address="ada@example.com", phone_region=None)
               if contact else None)
        enrolled = run_service.enroll(session, workflow=workflow, contact=who,
                                      trigger_type="webhook", event={"order": 7},
                                      now=runtime.clock(), idempotency_key=idempotency_key)
        return enrolled.run.id


class TestStatuses:
    @pytest.mark.parametrize(("label", "status", "sentence"), [
        ("welcome_ada_1h", "COMPLETED", "Reached"),
        ("payment_linus", "FAILED", "Failed at"),
        ("nurture_ada", "RUNNING", "Parked at"),
        ("nurture_grace", "CANCELED", "Canceled"),
    ])
    def test_each_status_renders_its_facts(
        self, page_client: TestClient, seeded: Seeded, label: str, status: str, sentence: str,
    ) -> None:
        run_id = seeded.runs[label]
        page = open_run(page_client, run_id)
        live = re.search(r'<section id="run-live".*?>', page, re.S)
        assert live
        assert f'data-status="{status}"' in live.group(0)
        assert ("data-live-url" in live.group(0)) == (status == "RUNNING")
        assert f'<code id="run-id">{run_id}</code>' in page
        assert 'data-copy="run-id"' in page
        status_strip = re.search(r'<div class="run-status.*?</div>', page, re.S)
        assert status_strip
        assert sentence in status_strip.group(0)
        key = label.split("_")[0].replace("payment", "payment-failed")
        assert f'href="/workflows/{key}"' in page
        assert "version 1" in page
        assert ('id="run-error"' in page) == (status == "FAILED")

    def test_a_pending_run_is_queued_and_can_only_be_canceled(
        self, page_client: TestClient, seeded: Seeded, runtime: Runtime,
        workspace: WorkspaceHandle,
    ) -> None:
        run_id = enroll(runtime, workspace.id, "welcome")
        page = open_run(page_client, run_id)
        assert "Queued since" in page
        assert 'data-live-url="/runs/' in page
        assert re.search(r'data-show-when="PENDING RUNNING"\s*>', page)
        assert re.search(r'data-show-when="COMPLETED FAILED CANCELED"\s*hidden', page)
        assert "<dt>Trigger</dt><dd><span class=\"mono\">webhook</span>" in page

    def test_a_parked_run_shows_its_wait_reaching_now(
        self, page_client: TestClient, seeded: Seeded
    ) -> None:
        page = open_run(page_client, seeded.runs["nurture_ada"])
        wait = step_html(page, 2)
        assert 'data-status="WAITING"' in wait
        assert "bar-ongoing" in wait
        assert "so far" in wait
        assert re.search(r'data-node="pause" data-state="waiting"', page)

    def test_bars_share_the_run_time_axis(self, page_client: TestClient, seeded: Seeded) -> None:
        # nurture_grace: created 4 h ago, parked at once, canceled an hour later.
        page = open_run(page_client, seeded.runs["nurture_grace"])
        assert "3 steps over 1 h 0 min" in page
        wait = step_html(page, 2)
        assert 'x="0.0%"' in wait
        assert 'width="100.0%"' in wait
        assert "lasts 1 h 0 min" in wait  # the numbers, for screen readers
        instant = step_html(page, 1)
        assert 'width="0.6%"' in instant  # a 0 ms step is still drawn


class TestFailedRun:
    def test_shows_the_stop_error_and_marks_the_failed_node(
        self, page_client: TestClient, seeded: Seeded
    ) -> None:
        page = open_run(page_client, seeded.runs["payment_linus"])
        box = re.search(r'<div class="error-box run-error".*?</div>', page, re.S)
        assert box
        assert "Card ending 4242 was declined for linus@example.com" in box.group(0)
        assert "<code data-failed-node>stop</code>" in box.group(0)
        assert re.search(r'data-node="stop" data-state="failed"', page)
        assert re.search(r'data-node="check" data-state="visited"', page)
        assert re.search(r'data-node="done" data-state="idle"', page)
        stop = step_html(page, 2)
        assert '<details data-step="2" open>' in stop
        assert "branch <b" in step_html(page, 1)


class TestStepDetails:
    def test_send_message_step_links_each_attempt(
        self, page_client: TestClient, seeded: Seeded
    ) -> None:
        page = open_run(page_client, seeded.runs["welcome_ada_1h"])
        send = step_html(page, 1)
        attempt = seeded.attempts["welcome_ada_1h"]
        assert f'<a href="/delivery-ops/{attempt}">Attempt 1</a>' in send
        assert 'data-status="DELIVERED"' in send

    def test_integration_step_shows_the_exchange_and_captures_but_no_secret(
        self, page_client: TestClient, seeded: Seeded, http_server: Any
    ) -> None:
        page = open_run(page_client, seeded.runs["lead_ada"])
        lookup = step_html(page, 1)
        assert f"<b>POST</b> {http_server.url}/echo" in lookup
        assert "HTTP 200" in lookup
        assert "Bearer [secret:CRM_TOKEN]" in lookup  # stored redacted, shown as stored
        assert re.search(r'<dl class="kvs captured">.*?<dt class="mono">seen</dt>', lookup, re.S)
        live = page_client.get(f"/runs/{seeded.runs['lead_ada']}/live").text
        for html in (page, live):
            assert CRM_TOKEN not in html

    def test_contact_link_or_inbound_event(
        self, page_client: TestClient, seeded: Seeded, runtime: Runtime,
        workspace: WorkspaceHandle,
    ) -> None:
        page = open_run(page_client, seeded.runs["welcome_ada_1h"])
        assert f'<a href="/contacts/{seeded.contacts["ada"]}">ada@example.com</a>' in page
        assert "+14155550101" in page
        inbound = open_run(page_client, enroll(runtime, workspace.id, "welcome", contact=False))
        assert "no contact — inbound event run" in inbound
        assert "/contacts/" not in inbound

    def test_idempotency_key_and_ignored_duplicates(
        self, page_client: TestClient, seeded: Seeded, runtime: Runtime,
        workspace: WorkspaceHandle,
    ) -> None:
        first = enroll(runtime, workspace.id, "welcome", idempotency_key="order-7")
        assert enroll(runtime, workspace.id, "welcome", idempotency_key="order-7") == first
        page = open_run(page_client, first)
        assert "<dt>Idempotency key</dt><dd><code>order-7</code>" in page
        assert "<dt>Duplicates ignored</dt><dd>1</dd>" in page
        assert "Idempotency key" not in open_run(page_client, seeded.runs["welcome_ada_1h"])


class TestLinks:
    def test_parent_and_child_runs_link_each_other(
        self, page_client: TestClient, seeded: Seeded, runtime: Runtime,
        workspace: WorkspaceHandle,
    ) -> None:
        install(runtime, workspace.id, PARENT)
        parent_id = enroll(runtime, workspace.id, "onboard")
        drain(runtime)
        with session_scope(runtime.sessions) as session:
            child_id = session.scalar(select(WorkflowRun.id)
                                      .where(WorkflowRun.parent_run_id == parent_id))
        assert child_id is not None
        parent = open_run(page_client, parent_id)
        children = re.search(r'data-link="children">.*?</ul>', parent, re.S)
        assert children
        assert f'href="/runs/{child_id}"' in children.group(0)
        assert f'Started run <a class="mono" href="/runs/{child_id}">' in step_html(parent, 1)
        child = open_run(page_client, child_id)
        started_by = re.search(r'data-link="parent">.*?</dd>', child, re.S)
        assert started_by
        assert f'href="/runs/{parent_id}"' in started_by.group(0)
        assert '<span class="mono">upstream</span>' in child

    def test_retry_and_original_link_each_other(
        self, page_client: TestClient, seeded: Seeded, runtime: Runtime,
        workspace: WorkspaceHandle,
    ) -> None:
        original = seeded.runs["payment_linus"]
        with session_scope(runtime.sessions) as session:
            retry = run_service.retry(session, workspace_id=workspace.id, run_id=original,
                                      actor="test", now=runtime.clock()).id
        page = open_run(page_client, original)
        retries = re.search(r'data-link="retries">.*?</ul>', page, re.S)
        assert retries
        assert f'href="/runs/{retry}"' in retries.group(0)
        again = open_run(page_client, retry)
        retry_of = re.search(r'data-link="original">.*?</dd>', again, re.S)
        assert retry_of
        assert f'href="/runs/{original}"' in retry_of.group(0)
        assert "No related runs" not in again


class TestLive:
    def test_the_fragment_stops_polling_once_the_run_is_finished(
        self, page_client: TestClient, seeded: Seeded, runtime: Runtime,
        workspace: WorkspaceHandle,
    ) -> None:
        run_id = seeded.runs["nurture_linus"]
        response = page_client.get(f"/runs/{run_id}/live", headers={"X-Requested-With": "fetch"})
        assert response.status_code == 200
        assert response.template.name == "runs/_detail_live.html"  # type: ignore[attr-defined]
        assert response.text.lstrip().startswith('<section id="run-live"')
        assert f'data-live-url="/runs/{run_id}/live"' in response.text
        assert "<html" not in response.text
        with session_scope(runtime.sessions) as session:
            run_service.cancel(session, workspace_id=workspace.id, run_id=run_id,
                               actor="test", now=runtime.clock())
        after = page_client.get(f"/runs/{run_id}/live").text
        assert "data-live-url" not in after
        assert 'data-status="CANCELED"' in after


def post(client: TestClient, path: str, token: str | None) -> Any:
    data = {"csrf_token": token} if token is not None else {}
    return client.post(path, data=data, follow_redirects=False)


class TestCancel:
    def test_an_operator_cancels_a_running_run(
        self, operator_page_client: TestClient, seeded: Seeded, runtime: Runtime,
    ) -> None:
        run_id = seeded.runs["nurture_ada"]
        page = open_run(operator_page_client, run_id)
        form = re.search(rf'<form method="post" action="/runs/{run_id}/cancel">\s*'
                         r'<input type="hidden" name="csrf_token" value="([^"]+)">', page)
        assert form, "the cancel dialog holds no form with the CSRF token"
        response = post(operator_page_client, f"/runs/{run_id}/cancel", form.group(1))
        assert response.status_code == 303
        assert response.headers["location"] == f"/runs/{run_id}?notice=canceled"
        assert run_of(runtime, run_id).status == "CANCELED"
        with session_scope(runtime.sessions) as session:
            audit = session.scalars(select(AuditEvent).where(
                AuditEvent.action == "run.cancel", AuditEvent.target_id == str(run_id))).all()
            assert [(a.actor, a.target_type) for a in audit] == [(OPERATOR, "run")]
        page = open_run(operator_page_client, f"{run_id}?notice=canceled")
        assert '<div class="flash flash-ok" role="status">Run canceled.</div>' in page
        assert re.search(r'data-show-when="PENDING RUNNING"\s*hidden', page)

    def test_a_run_a_worker_holds_is_flagged_and_stops_at_its_next_step(
        self, page_client: TestClient, seeded: Seeded, runtime: Runtime,
    ) -> None:
        run_id = seeded.runs["nurture_ada"]
        with session_scope(runtime.sessions) as session:
            job = session.get(Job, run_id)
            assert job is not None
            job.lease_owner, job.lease_expires_at = "busy-worker", runtime.clock() + timedelta(
                minutes=1)
        token = csrf_token(page_client, f"/runs/{run_id}")
        response = post(page_client, f"/runs/{run_id}/cancel", token)
        assert response.headers["location"] == f"/runs/{run_id}?notice=cancel-requested"
        assert run_of(runtime, run_id).status == "RUNNING"
        with session_scope(runtime.sessions) as session:
            job = session.get(Job, run_id)
            assert job is not None
            assert job.cancel_requested
        page = open_run(page_client, f"{run_id}?notice=cancel-requested")
        assert "Cancel requested: the worker stops this run at its next step." in page

    def test_a_viewer_is_refused_and_sees_no_actions(
        self, viewer_page_client: TestClient, seeded: Seeded, runtime: Runtime,
    ) -> None:
        run_id = seeded.runs["nurture_ada"]
        page = open_run(viewer_page_client, run_id)
        assert "/cancel" not in page
        assert "/retry" not in page
        assert "data-show-when" not in page
        token = csrf_token(viewer_page_client, f"/runs/{run_id}")
        response = post(viewer_page_client, f"/runs/{run_id}/cancel", token)
        assert response.status_code == 403
        assert run_of(runtime, run_id).status == "RUNNING"

    def test_without_the_csrf_token_nothing_happens(
        self, page_client: TestClient, seeded: Seeded, runtime: Runtime,
    ) -> None:
        run_id = seeded.runs["nurture_ada"]
        for token in (None, "forged"):
            response = post(page_client, f"/runs/{run_id}/cancel", token)
            assert response.status_code == 403
            assert "Not allowed" in response.text
        assert run_of(runtime, run_id).status == "RUNNING"

    def test_another_workspace_gets_404(
        self, outsider_page_client: TestClient, seeded: Seeded, runtime: Runtime,
    ) -> None:
        run_id = seeded.runs["nurture_ada"]
        token = csrf_token(outsider_page_client, "/runs/does-not-matter")
        response = post(outsider_page_client, f"/runs/{run_id}/cancel", token)
        assert response.status_code == 404
        assert run_of(runtime, run_id).status == "RUNNING"

    def test_a_finished_run_cannot_be_canceled(
        self, page_client: TestClient, seeded: Seeded
    ) -> None:
        run_id = seeded.runs["welcome_ada_1h"]
        token = csrf_token(page_client, f"/runs/{run_id}")
        response = post(page_client, f"/runs/{run_id}/cancel", token)
        assert response.status_code == 409
        assert "already COMPLETED" in response.text
        assert response.headers["content-type"].startswith("text/html")


class TestRetry:
    def test_retry_starts_a_linked_run_and_opens_it(
        self, operator_page_client: TestClient, seeded: Seeded, runtime: Runtime,
    ) -> None:
        original = seeded.runs["payment_linus"]
        token = csrf_token(operator_page_client, f"/runs/{original}")
        response = post(operator_page_client, f"/runs/{original}/retry", token)
        assert response.status_code == 303
        found = re.fullmatch(r"/runs/([0-9a-f-]{36})\?notice=retried",
                             response.headers["location"])
        assert found
        new = run_of(runtime, uuid.UUID(found.group(1)))
        old = run_of(runtime, original)
        assert new.id != original
        assert (new.retry_of, new.version_id, new.contact_id, new.trigger_payload) == (
            original, old.version_id, old.contact_id, old.trigger_payload)
        page = open_run(operator_page_client, f"{new.id}?notice=retried")
        assert f"Retry of {short_id(original)} started." in page
        assert 'data-link="original"' in page

    def test_a_run_in_flight_cannot_be_retried(
        self, page_client: TestClient, seeded: Seeded
    ) -> None:
        run_id = seeded.runs["nurture_ada"]
        token = csrf_token(page_client, f"/runs/{run_id}")
        response = post(page_client, f"/runs/{run_id}/retry", token)
        assert response.status_code == 409

    def test_a_viewer_cannot_retry(
        self, viewer_page_client: TestClient, seeded: Seeded, runtime: Runtime,
    ) -> None:
        run_id = seeded.runs["payment_linus"]
        token = csrf_token(viewer_page_client, f"/runs/{run_id}")
        assert post(viewer_page_client, f"/runs/{run_id}/retry", token).status_code == 403
        with session_scope(runtime.sessions) as session:
            assert session.scalar(select(WorkflowRun).where(
                WorkflowRun.retry_of == run_id)) is None


class TestNotFound:
    @pytest.mark.parametrize("run_id", [
        "01a20fa3-1ea3-7b66-a9ab-2ac0a1a3f95b", "nope", "1' OR '1'='1",
    ])
    def test_unknown_or_malformed_ids(
        self, page_client: TestClient, seeded: Seeded, run_id: str
    ) -> None:
        for path in (f"/runs/{run_id}", f"/runs/{run_id}/live"):
            response = page_client.get(path)
            assert response.status_code == 404
            assert "Page not found" in response.text

    def test_another_workspace_run(
        self, outsider_page_client: TestClient, seeded: Seeded
    ) -> None:
        response = outsider_page_client.get(f"/runs/{seeded.runs['payment_linus']}")
        assert response.status_code == 404
        assert "Card ending" not in response.text
