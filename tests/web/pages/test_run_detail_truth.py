"""The run detail page tells what happened as it is now: a failed request that went on by
`on_error` is a handled error, a message's delivery status is its attempt's, a canceled run
says who canceled it and why, a retried run where its newest retry is, a run on an old
version offers a retry on both, a condition shows the values it saw, and a template error
names its field and expression."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from relayflow.services import run as run_service
from relayflow.services import workflow as workflow_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import Job, WorkflowRun
from tests.conftest import WorkspaceHandle
from tests.support.flows import install, run_of, start
from tests.support.pages import csrf_token
from tests.support.seed import WORKFLOWS, Seeded, seed
from tests.support.worker import drain
from tests.web.conftest import OPERATOR


@pytest.fixture
def seeded(runtime: Runtime, workspace: WorkspaceHandle, http_server: Any) -> Seeded:
    return seed(runtime, workspace.id, http_url=http_server.url)


def guarded(url: str) -> dict[str, Any]:
    """trigger → call (INTEGRATION, on_error → fallback) → done | fallback (END)."""
    return {"key": "guarded", "name": "Guarded call", "trigger": {"type": "manual"},
            "start": "call", "nodes": {
                "call": {"type": "INTEGRATION", "request": {"method": "POST", "url": url},
                         "next": "done", "on_error": "fallback"},
                "fallback": {"type": "END"}, "done": {"type": "END"}}}


def open_run(client: TestClient, run_id: object) -> str:
    response = client.get(f"/runs/{run_id}")
    assert response.status_code == 200, response.text
    assert response.template.name == "runs/detail.html"  # type: ignore[attr-defined]
    return response.text


def post(client: TestClient, path: str, token: str) -> Any:
    return client.post(path, data={"csrf_token": token}, follow_redirects=False)


def status_strip(page: str) -> str:
    found = re.search(r'<div class="run-status.*?</div>', page, re.S)
    assert found
    return found.group(0)


def text_of(markup: str) -> str:
    """What a reader sees: the tags dropped, entities read, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", markup)).split())


def whole_step(page: str, seq: int) -> str:
    """Step `seq` of the trace with its body (its attempts list holds <li>s of its own)."""
    found = re.search(rf'<li id="step-{seq}".*?(?=<li id="step-{seq + 1}"|</ol>\s*</section>)',
                      page, re.S)
    assert found, f"no step {seq} in the trace"
    return found.group(0)


class TestHandledError:
    def test_a_request_that_failed_and_went_on_is_no_success(
        self, page_client: TestClient, runtime: Runtime, workspace: WorkspaceHandle,
        http_server: Any, members: Any,
    ) -> None:
        install(runtime, workspace.id, guarded(f"{http_server.url}/status/503"))
        [run_id] = start(runtime, workspace.id, "guarded")
        drain(runtime)
        assert run_of(runtime, run_id).status == "COMPLETED"

        page = open_run(page_client, run_id)
        call = whole_step(page, 1)
        assert 'data-outcome="handled_error"' in call
        assert '<span class="c-status"><span class="badge badge-handled_error"' in call
        assert ">Handled error</span>" in call
        assert 'class="badge badge-completed"' not in call  # never the green "Completed"
        assert "bar-handled" in call
        box = re.search(r'<div class="handled-box".*?</div>', call, re.S)
        assert box
        assert "went on by the <code>on_error</code> edge" in box.group(0)
        assert ">fallback</a>" in box.group(0)
        assert "HTTP 503" in box.group(0)
        assert re.search(r'data-node="call" data-state="handled"', page)
        assert 'class="lg lg-handled"' in page
        assert 'data-outcome="handled_error"' not in whole_step(page, 2)  # fallback: END
        assert ("Handled error call: its request failed, and the run went on by on_error."
                in text_of(status_strip(page)))

    def test_a_request_that_succeeded_has_no_handled_error(
        self, page_client: TestClient, runtime: Runtime, workspace: WorkspaceHandle,
        http_server: Any, members: Any,
    ) -> None:
        install(runtime, workspace.id, guarded(f"{http_server.url}/json"))
        [run_id] = start(runtime, workspace.id, "guarded")
        drain(runtime)

        page = open_run(page_client, run_id)
        assert "handled_error" not in page
        assert "handled-note" not in page
        assert 'class="badge badge-completed" data-status="COMPLETED">Completed' in whole_step(
            page, 1)
        assert re.search(r'data-node="call" data-state="visited"', page)


class TestDeliveryNow:
    def test_a_bounced_message_shows_bounced_not_the_status_at_send_time(
        self, page_client: TestClient, seeded: Seeded
    ) -> None:
        page = open_run(page_client, seeded.runs["welcome_grace"])
        send = whole_step(page, 1)
        row = re.search(r'<summary class="step-row">.*?</summary>', send, re.S)
        assert row
        assert 'data-delivery-status="BOUNCED"' in row.group(0)
        now = re.search(r'<p class="delivery-now".*?</p>', send, re.S)
        assert now
        assert 'data-status="BOUNCED"' in now.group(0)
        assert "Sent when this step ran" in text_of(now.group(0))
        bag = send[send.index("Output bag"):]
        assert '"status": "BOUNCED"' in html.unescape(bag)
        assert "the next nodes saw <code>status: SENT</code>" in bag

    def test_a_message_still_as_sent_says_nothing_more(
        self, page_client: TestClient, seeded: Seeded
    ) -> None:
        send = whole_step(open_run(page_client, seeded.runs["welcome_ada_2h"]), 1)
        assert 'data-delivery-status="SENT"' in send
        assert "when this step ran" not in send


class TestCanceledBy:
    def test_the_member_and_the_reason_given_in_the_dialog(
        self, operator_page_client: TestClient, seeded: Seeded, runtime: Runtime,
    ) -> None:
        run_id = seeded.runs["nurture_ada"]
        page = open_run(operator_page_client, run_id)
        dialog = re.search(r'<dialog id="cancel-run".*?</dialog>', page, re.S)
        assert dialog
        assert '<textarea id="cancel-reason" name="reason" maxlength="1000"' in dialog.group(0)
        response = operator_page_client.post(
            f"/runs/{run_id}/cancel", follow_redirects=False,
            data={"csrf_token": csrf_token(operator_page_client, f"/runs/{run_id}"),
                  "reason": "  sent to the wrong audience  "})
        assert response.status_code == 303
        run = run_of(runtime, run_id)
        assert (run.canceled_by, run.cancel_reason) == (f"member:{OPERATOR}",
                                                         "sent to the wrong audience")
        who = re.search(r'<p class="cancel-who".*?</p>',
                        open_run(operator_page_client, run_id), re.S)
        assert who
        assert text_of(who.group(0)) == f"Canceled by {OPERATOR}: sent to the wrong audience"
        assert f'data-canceled-by="member:{OPERATOR}"' in who.group(0)

    def test_the_seeded_cancel_names_olga_and_her_reason(
        self, page_client: TestClient, seeded: Seeded
    ) -> None:
        strip = status_strip(open_run(page_client, seeded.runs["nurture_grace"]))
        assert "Canceled by olga@acme.test: wrong audience" in text_of(strip)

    def test_without_a_reason_it_says_none_was_given(
        self, page_client: TestClient, seeded: Seeded, runtime: Runtime, members: Any,
    ) -> None:
        run_id = seeded.runs["nurture_linus"]
        post(page_client, f"/runs/{run_id}/cancel", csrf_token(page_client, f"/runs/{run_id}"))
        strip = text_of(status_strip(open_run(page_client, run_id)))
        assert f"Canceled by {members['admin']} (no reason given)" in strip

    def test_a_run_its_worker_holds_says_who_asked(
        self, page_client: TestClient, seeded: Seeded, runtime: Runtime, members: Any,
    ) -> None:
        run_id = seeded.runs["nurture_ada"]
        with session_scope(runtime.sessions) as session:
            job = session.get(Job, run_id)
            assert job is not None
            job.lease_owner, job.lease_expires_at = "busy", runtime.clock().replace(year=2999)
        page_client.post(f"/runs/{run_id}/cancel", follow_redirects=False, data={
            "csrf_token": csrf_token(page_client, f"/runs/{run_id}"), "reason": "duplicate"})
        strip = text_of(status_strip(open_run(page_client, run_id)))
        assert f"Cancel requested by {members['admin']}: duplicate" in strip

    def test_a_deactivation_names_itself_and_who_deactivated(
        self, page_client: TestClient, seeded: Seeded, runtime: Runtime,
        workspace: WorkspaceHandle,
    ) -> None:
        with session_scope(runtime.sessions) as session:
            workflow_service.deactivate(session, workspace_id=workspace.id, key="nurture",
                                        actor="olga@acme.test", now=runtime.clock())
        strip = text_of(status_strip(open_run(page_client, seeded.runs["nurture_linus"])))
        assert ("Canceled by the workflow's deactivation: workflow nurture was deactivated "
                "by olga@acme.test") in strip

    def test_a_reason_too_long_is_refused_with_why(
        self, page_client: TestClient, seeded: Seeded, runtime: Runtime,
    ) -> None:
        run_id = seeded.runs["nurture_ada"]
        response = page_client.post(f"/runs/{run_id}/cancel", follow_redirects=False, data={
            "csrf_token": csrf_token(page_client, f"/runs/{run_id}"), "reason": "x" * 1001})
        assert response.status_code == 422
        assert "a cancel reason is at most 1000 characters" in response.text
        assert run_of(runtime, run_id).status == "RUNNING"

    def test_a_run_never_canceled_names_nobody(
        self, page_client: TestClient, seeded: Seeded
    ) -> None:
        assert "cancel-who" not in open_run(page_client, seeded.runs["welcome_ada_1h"])


class TestRetried:
    def test_the_page_and_the_list_show_the_newest_retry_and_its_status(
        self, page_client: TestClient, seeded: Seeded, runtime: Runtime,
        workspace: WorkspaceHandle,
    ) -> None:
        original = seeded.runs["payment_linus"]
        with session_scope(runtime.sessions) as session:
            first = run_service.retry(session, workspace_id=workspace.id, run_id=original,
                                      actor="t", now=runtime.clock()).id
        drain(runtime)
        with session_scope(runtime.sessions) as session:
            newest = run_service.retry(session, workspace_id=workspace.id, run_id=original,
                                       actor="t", now=runtime.clock()).id

        strip = status_strip(open_run(page_client, original))
        assert f'<a href="/runs/{newest}">' in strip
        assert "Retried → Pending" in text_of(strip)
        assert "the newest of 2 retries" in text_of(strip)
        row = page_client.get(f"/runs/{original}/row").text
        assert 'data-latest-retry="PENDING"' in row
        assert "retried → Pending" in text_of(row)
        drain(runtime)
        listing = page_client.get("/runs").text
        mine = re.search(rf'<tr role="row" id="run-{original}".*?</tr>', listing, re.S)
        assert mine
        assert f'href="/runs/{newest}"' in mine.group(0)
        assert "retried → Failed" in text_of(mine.group(0))
        retry_row = re.search(rf'<tr role="row" id="run-{first}".*?</tr>', listing, re.S)
        assert retry_row
        assert "retried →" not in retry_row.group(0)

    def test_the_list_reads_the_retries_of_a_page_in_one_query(
        self, page_client: TestClient, seeded: Seeded, runtime: Runtime,
        workspace: WorkspaceHandle,
    ) -> None:
        from sqlalchemy import event

        def selects() -> list[str]:
            engine = runtime.sessions.kw["bind"]
            seen: list[str] = []

            def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
                seen.append(statement)

            event.listen(engine, "before_cursor_execute", record)
            try:
                assert page_client.get("/runs").status_code == 200
            finally:
                event.remove(engine, "before_cursor_execute", record)
            return seen

        before = selects()
        with session_scope(runtime.sessions) as session:
            for label in ("payment_linus", "welcome_ada_1h", "welcome_ada_2h", "lead_ada"):
                run_service.retry(session, workspace_id=workspace.id,
                                  run_id=seeded.runs[label], actor="t", now=runtime.clock())
        after = selects()

        assert len(after) == len(before)
        assert sum("retry_of IN" in s for s in after) == 1


class TestRetryVersions:
    def _moved_on(self, runtime: Runtime, workspace: WorkspaceHandle) -> None:
        """The payment-failed workflow gets a version 2 that ends instead of stopping."""
        definition = WORKFLOWS["payment-failed"]
        install(runtime, workspace.id, {**definition, "nodes": {
            **definition["nodes"], "stop": {"type": "END"}}})

    def test_a_run_on_an_old_version_offers_both(
        self, page_client: TestClient, seeded: Seeded, runtime: Runtime,
        workspace: WorkspaceHandle,
    ) -> None:
        self._moved_on(runtime, workspace)
        page = open_run(page_client, seeded.runs["payment_linus"])
        assert 'data-current-version="2"' in page
        assert "(the workflow is at version 2 now)" in page
        original = re.search(r'<dialog id="retry-run".*?</dialog>', page, re.S)
        current = re.search(r'<dialog id="retry-run-current".*?</dialog>', page, re.S)
        assert original
        assert current
        assert '<input type="hidden" name="version" value="original">' in original.group(0)
        assert '<input type="hidden" name="version" value="current">' in current.group(0)
        assert 'data-dialog="retry-run">Retry on v1 (original)</button>' in page
        assert 'data-dialog="retry-run-current">Retry on v2 (current)</button>' in page

    @pytest.mark.parametrize(("version", "number"), [("original", 1), ("current", 2)])
    def test_the_form_retries_on_the_version_it_names(
        self, operator_page_client: TestClient, seeded: Seeded, runtime: Runtime,
        workspace: WorkspaceHandle, version: str, number: int,
    ) -> None:
        self._moved_on(runtime, workspace)
        original = seeded.runs["payment_linus"]
        response = operator_page_client.post(f"/runs/{original}/retry", follow_redirects=False,
                                              data={"csrf_token": csrf_token(
                                                  operator_page_client, f"/runs/{original}"),
                                                  "version": version})
        assert response.status_code == 303
        found = re.fullmatch(r"/runs/([0-9a-f-]{36})\?notice=retried",
                             response.headers["location"])
        assert found
        page = open_run(operator_page_client, found.group(1))
        assert f"· version {number}" in text_of(page)

    def test_a_bad_version_is_refused_with_why(
        self, page_client: TestClient, seeded: Seeded, runtime: Runtime,
    ) -> None:
        original = seeded.runs["payment_linus"]
        response = page_client.post(f"/runs/{original}/retry", follow_redirects=False, data={
            "csrf_token": csrf_token(page_client, f"/runs/{original}"), "version": "latest"})
        assert response.status_code == 422
        assert "version must be one of original, current" in response.text
        with session_scope(runtime.sessions) as session:
            assert session.scalar(select(WorkflowRun).where(
                WorkflowRun.retry_of == original)) is None

    def test_a_run_on_the_current_version_offers_one_retry(
        self, page_client: TestClient, seeded: Seeded
    ) -> None:
        page = open_run(page_client, seeded.runs["payment_linus"])
        assert "data-current-version" not in page
        assert "retry-run-current" not in page
        assert 'data-dialog="retry-run">Retry</button>' in page


class TestConditionSeen:
    def test_the_values_the_condition_read_beside_the_branch(
        self, page_client: TestClient, seeded: Seeded
    ) -> None:
        check = whole_step(open_run(page_client, seeded.runs["payment_linus"]), 1)
        assert "Branch taken" in check
        seen = re.search(r'<dl class="kvs seen" data-seen>.*?</dl>', check, re.S)
        assert seen, check
        assert re.findall(r'<dt class="mono">([^<]+)</dt>', seen.group(0)) == ["contact.plan"]
        assert '<dd><code>"starter"</code></dd>' in seen.group(0)  # linus is on starter
        assert "Values the condition saw" in check
        assert ("<dt>Condition</dt><dd><code>contact.plan == &#39;pro&#39;</code> gave "
                "<b>false</b>") in check


class TestErrorsNameTheirPlace:
    def test_the_run_error_names_the_field_and_the_expression(
        self, page_client: TestClient, runtime: Runtime, workspace: WorkspaceHandle,
        members: Any,
    ) -> None:
        install(runtime, workspace.id, {
            "key": "card", "trigger": {"type": "manual"}, "start": "send", "nodes": {
                "send": {"type": "SEND_MESSAGE", "channel": "email", "subject": "Card",
                         "body": "Hi {{ contact.email }},\nyour card {{ contact.card_last4 }}",
                         "next": "done"}, "done": {"type": "END"}}})
        [run_id] = start(runtime, workspace.id, "card", email="ann@example.com")
        drain(runtime)

        box = re.search(r'<div class="error-box run-error".*?</div>',
                        open_run(page_client, run_id), re.S)
        assert box
        assert ("UndefinedError: body: &#39;dict object&#39; has no attribute "
                "&#39;card_last4&#39; in {{ contact.card_last4 }}") in box.group(0)

