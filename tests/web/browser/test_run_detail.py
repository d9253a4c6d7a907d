"""The run detail page in a real browser: error box and graph marks, cancel through the
confirmation dialog, live status without reload, and what a viewer may not do."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect

from relayflow.services import run as run_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from tests.conftest import WorkspaceHandle
from tests.support.flows import run_of
from tests.support.seed import seed
from tests.web.browser.conftest import screenshot, sign_in
from tests.web.conftest import ADMIN, OPERATOR, VIEWER

FETCH_POST = """async ([path, token]) => {
  const body = new URLSearchParams();
  if (token !== null) body.set("csrf_token", token);
  const response = await fetch(path, {method: "POST", body, redirect: "manual",
                                      credentials: "same-origin"});
  return response.status;
}"""


def badge(page: Page) -> Any:
    return page.locator("#run-live .run-status .badge")


class TestFailedRun:
    def test_shows_the_error_box_and_the_failed_node_in_the_graph(
        self, page: Page, members: dict[str, str], runtime: Runtime, workspace: WorkspaceHandle,
    ) -> None:
        seeded = seed(runtime, workspace.id)
        sign_in(page, ADMIN)
        page.goto(f"/runs/{seeded.runs['payment_linus']}")
        error = page.locator("#run-error")
        expect(error).to_be_visible()
        expect(error).to_contain_text("Card ending 4242 was declined for linus@example.com")
        expect(error).to_contain_text("Failed at node stop")
        stop = page.locator('svg.wf-graph g[data-node="stop"]')
        expect(stop).to_have_attribute("data-state", "failed")
        expect(stop).to_contain_text("✕ stop")
        expect(page.locator('svg.wf-graph g[data-node="done"]')).to_have_attribute(
            "data-state", "idle")
        # The failing step is open in the trace, and the status strip links to it.
        expect(page.locator("#step-2 .step-error")).to_be_visible()
        page.get_by_role("link", name="stop", exact=True).first.click()
        expect(page).to_have_url(re.compile(r"#step-2$"))
        expect(badge(page)).to_have_text("Failed")


class TestCancel:
    def test_an_operator_cancels_a_running_run_through_the_dialog(
        self, page: Page, members: dict[str, str], runtime: Runtime, workspace: WorkspaceHandle,
    ) -> None:
        seeded = seed(runtime, workspace.id)
        run_id = seeded.runs["nurture_ada"]
        sign_in(page, OPERATOR)
        page.goto(f"/runs/{run_id}")
        expect(badge(page)).to_have_text("Running")
        expect(page.get_by_role("button", name="Retry")).to_be_hidden()
        page.get_by_role("button", name="Cancel run").click()
        dialog = page.get_by_role("dialog", name=re.compile("Cancel run"))
        expect(dialog).to_be_visible()
        dialog.get_by_role("button", name="Keep it").click()
        expect(dialog).to_be_hidden()
        assert run_of(runtime, run_id).status == "RUNNING"
        page.get_by_role("button", name="Cancel run").click()
        dialog.get_by_role("button", name="Cancel run").click()
        expect(page).to_have_url(re.compile(rf"/runs/{run_id}\?notice=canceled$"))
        expect(page.get_by_role("status").filter(has_text="Run canceled.")).to_be_visible()
        expect(badge(page)).to_have_text("Canceled")
        expect(page.get_by_role("button", name="Cancel run")).to_be_hidden()
        expect(page.get_by_role("button", name="Retry")).to_be_visible()
        assert run_of(runtime, run_id).status == "CANCELED"

    def test_the_status_turns_canceled_without_a_reload(
        self, page: Page, members: dict[str, str], runtime: Runtime, workspace: WorkspaceHandle,
    ) -> None:
        seeded = seed(runtime, workspace.id)
        run_id = seeded.runs["nurture_linus"]
        sign_in(page, ADMIN)
        page.goto(f"/runs/{run_id}")
        expect(badge(page)).to_have_text("Running")
        expect(page.locator("#run-live")).to_have_attribute("data-live-url",
                                                            f"/runs/{run_id}/live")
        page.evaluate("window.__marker = 'still here'")
        page.locator("#step-1 summary").click()  # a step the operator opened stays open
        expect(page.locator("#step-1 .step-body")).to_be_visible()
        with session_scope(runtime.sessions) as session:
            run_service.cancel(session, workspace_id=workspace.id, run_id=run_id,
                               actor="someone-else@acme.test", now=runtime.clock())
        expect(badge(page)).to_have_text("Canceled")
        assert page.evaluate("window.__marker") == "still here"
        expect(page.locator("#run-live")).not_to_have_attribute("data-live-url", re.compile("."))
        expect(page.locator('#step-2[data-status="CANCELED"]')).to_be_visible()
        expect(page.locator("#step-1 .step-body")).to_be_visible()
        expect(page.locator("#run-announce")).to_have_text("Run status is now Canceled.")
        expect(page.get_by_role("button", name="Cancel run")).to_be_hidden()
        expect(page.get_by_role("button", name="Retry")).to_be_visible()


class TestRefused:
    def test_a_viewer_has_no_actions_and_a_forged_post_is_refused(
        self, page: Page, members: dict[str, str], runtime: Runtime, workspace: WorkspaceHandle,
    ) -> None:
        seeded = seed(runtime, workspace.id)
        run_id = seeded.runs["nurture_ada"]
        sign_in(page, VIEWER)
        page.goto(f"/runs/{run_id}")
        expect(badge(page)).to_have_text("Running")
        expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
        expect(page.get_by_role("button", name="Retry")).to_have_count(0)
        token = page.locator('meta[name="csrf-token"]').get_attribute("content")
        assert token
        status = page.evaluate(FETCH_POST, [f"/runs/{run_id}/cancel", token])
        assert status == 403
        failed = seeded.runs["payment_linus"]
        assert page.evaluate(FETCH_POST, [f"/runs/{failed}/retry", token]) == 403
        assert run_of(runtime, run_id).status == "RUNNING"

    def test_a_post_without_the_csrf_token_is_refused(
        self, page: Page, members: dict[str, str], runtime: Runtime, workspace: WorkspaceHandle,
    ) -> None:
        seeded = seed(runtime, workspace.id)
        run_id = seeded.runs["nurture_ada"]
        sign_in(page, ADMIN)
        page.goto(f"/runs/{run_id}")
        assert page.evaluate(FETCH_POST, [f"/runs/{run_id}/cancel", None]) == 403
        assert run_of(runtime, run_id).status == "RUNNING"


class TestScreenshot:
    def test_an_integration_run(
        self, page: Page, members: dict[str, str], runtime: Runtime, workspace: WorkspaceHandle,
        http_server: Any,
    ) -> None:
        seeded = seed(runtime, workspace.id, http_url=http_server.url)
        sign_in(page, ADMIN)
        page.goto(f"/runs/{seeded.runs['lead_ada']}")
        page.locator("#step-1 summary").click()
        expect(page.locator("#step-1 .request-line")).to_contain_text(f"POST {http_server.url}")
        expect(page.locator("#step-1 .captured")).to_contain_text("seen")
        screenshot(page, "run-detail")

