"""What a person reads on real pages: a failed request that went on by on_error is an amber
"Handled error", never a green "Completed"; a run canceled through the dialog says who
canceled it and why; a retried run says where its newest retry is, on the run list and on
its page, and a run on an old version is retried on the current one from its page."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect

from relayflow.services.runtime import Runtime
from tests.conftest import WorkspaceHandle
from tests.support.flows import install, run_of, start
from tests.support.seed import WORKFLOWS, seed
from tests.support.worker import drain
from tests.web.browser.conftest import screenshot, sign_in
from tests.web.conftest import ADMIN, OPERATOR

BACKGROUND = "el => getComputedStyle(el).backgroundColor"
AMBER_BG = "rgb(255, 237, 213)"  # --warn-bg
GREEN_BG = "rgb(220, 252, 231)"  # --ok-bg


class TestHandledError:
    def test_the_step_is_an_amber_handled_error_in_the_trace_and_the_graph(
        self, page: Page, members: dict[str, str], runtime: Runtime, workspace: WorkspaceHandle,
        http_server: Any,
    ) -> None:
        install(runtime, workspace.id, {
            "key": "guarded", "name": "Guarded call", "trigger": {"type": "manual"},
            "start": "call", "nodes": {
                "call": {"type": "INTEGRATION", "next": "done", "on_error": "fallback",
                         "request": {"method": "POST", "url": f"{http_server.url}/status/500"}},
                "fallback": {"type": "END"}, "done": {"type": "END"}}})
        [run_id] = start(runtime, workspace.id, "guarded")
        drain(runtime)
        sign_in(page, ADMIN)
        page.goto(f"/runs/{run_id}")

        status = page.locator("#step-1 .c-status .badge")
        expect(status).to_have_text("Handled error")
        assert status.evaluate(BACKGROUND) == AMBER_BG
        expect(page.locator("#step-2 .c-status .badge")).to_have_text("Completed")  # fallback
        assert page.locator("#step-2 .c-status .badge").evaluate(BACKGROUND) == GREEN_BG
        node = page.locator('svg.wf-graph g[data-node="call"]')
        expect(node).to_have_attribute("data-state", "handled")
        expect(node).to_contain_text("⚠ call")
        page.locator("#step-1 summary").click()
        box = page.locator("#step-1 .handled-box")
        expect(box).to_be_visible()
        expect(box).to_contain_text("the run went on by the on_error edge to fallback")
        expect(box).to_contain_text("HTTP 500")
        screenshot(page, "run-handled-error")


class TestCanceledBy:
    def test_the_dialog_takes_a_reason_and_the_page_says_who_and_why(
        self, page: Page, members: dict[str, str], runtime: Runtime, workspace: WorkspaceHandle,
    ) -> None:
        run_id = seed(runtime, workspace.id).runs["nurture_ada"]
        sign_in(page, OPERATOR)
        page.goto(f"/runs/{run_id}")
        page.get_by_role("button", name="Cancel run").click()
        dialog = page.get_by_role("dialog", name=re.compile("Cancel run"))
        dialog.get_by_label("Reason").fill("wrong audience")
        dialog.get_by_role("button", name="Cancel run").click()

        expect(page).to_have_url(re.compile(rf"/runs/{run_id}\?notice=canceled$"))
        expect(page.locator("#run-live .cancel-who")).to_have_text(
            f"Canceled by {OPERATOR}: wrong audience")
        assert run_of(runtime, run_id).cancel_reason == "wrong audience"


class TestRetried:
    def test_retry_on_the_current_version_then_the_list_shows_where_it_went(
        self, page: Page, members: dict[str, str], runtime: Runtime, workspace: WorkspaceHandle,
    ) -> None:
        original = seed(runtime, workspace.id).runs["payment_linus"]
        definition = WORKFLOWS["payment-failed"]  # version 2 ends instead of stopping
        install(runtime, workspace.id, {**definition, "nodes": {
            **definition["nodes"], "stop": {"type": "END"}}})
        sign_in(page, OPERATOR)
        page.goto(f"/runs/{original}")
        expect(page.locator("[data-current-version]")).to_have_text(
            "(the workflow is at version 2 now)")
        expect(page.get_by_role("button", name="Retry on v1 (original)")).to_be_visible()
        page.get_by_role("button", name="Retry on v2 (current)").click()
        dialog = page.get_by_role("dialog", name=re.compile("on version 2"))
        dialog.get_by_role("button", name="Start retry").click()
        expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}\?notice=retried$"))
        retry_id = page.url.split("/runs/")[1].split("?")[0]
        drain(runtime)

        page.goto("/runs")
        row = page.locator(f"#run-{original}")
        link = row.locator("a.run-retried")
        expect(link).to_have_text("retried → Completed")
        link.click()
        expect(page).to_have_url(re.compile(rf"/runs/{retry_id}$"))
        expect(page.locator("#run-live .run-status .badge").first).to_have_text("Completed")
        page.goto(f"/runs/{original}")
        expect(page.locator("#run-live .retried")).to_contain_text("Retried → Completed")
        screenshot(page, "run-retried")
