"""The workflows pages in a real browser: follow a workflow, deactivate it, run it, copy its
webhook URL."""

from __future__ import annotations

import re
import uuid
from typing import Any

from playwright.sync_api import BrowserContext, Page, expect

from relayflow.services.runtime import Runtime
from tests.support.flows import install, run_of
from tests.support.seed import seed
from tests.web.browser.conftest import screenshot, sign_in
from tests.web.conftest import ADMIN, OPERATOR

HOOK = {"key": "signup-hook", "name": "Signup hook",
        "trigger": {"type": "webhook", "contact": {"email": "{{ event.email }}"}},
        "start": "done", "nodes": {"done": {"type": "END"}}}


class TestWorkflowPages:
    def test_follow_a_workflow_and_deactivate_it_through_the_dialog(
        self, page: Page, runtime: Runtime, workspace: Any, members: dict[str, str]
    ) -> None:
        seeded = seed(runtime, workspace.id)
        sign_in(page, OPERATOR, next_path="/workflows")
        row = page.locator('tr[data-workflow="nurture"]')
        expect(row.locator('[data-outcome="running"]')).to_have_text("2")
        expect(row.locator('[data-outcome="canceled"]')).to_have_text("1")
        screenshot(page, "workflows-list")
        row.get_by_role("link", name="Nurture drip").click()
        expect(page).to_have_url(re.compile(r"/workflows/nurture$"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Nurture drip")
        graph = page.locator(".graph svg")
        for node in ("trigger", "hello", "pause", "done"):
            expect(graph.locator(f'[data-node="{node}"]')).to_have_count(1)

        page.get_by_role("button", name="Deactivate", exact=True).click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text("cancels 2 in-flight runs")
        screenshot(page, "workflows-deactivate-dialog")
        dialog.get_by_role("button", name="Deactivate and cancel 2 runs").click()

        expect(page.get_by_role("status")).to_contain_text("Deactivated: 2 in-flight runs canceled")
        expect(page.locator(".wf-meta .badge")).to_have_text("Inactive")
        expect(page.locator('.outcomes [data-outcome="running"] strong')).to_have_text("0")
        expect(page.locator('.outcomes [data-outcome="canceled"] strong')).to_have_text("3")
        expect(page.get_by_role("button", name="Activate", exact=True)).to_be_visible()
        for label in ("nurture_ada", "nurture_linus"):
            assert run_of(runtime, seeded.runs[label]).status == "CANCELED"

    def test_run_now_for_a_contact_lands_on_the_new_run(
        self, page: Page, runtime: Runtime, workspace: Any, members: dict[str, str]
    ) -> None:
        seeded = seed(runtime, workspace.id)
        sign_in(page, ADMIN, next_path="/workflows/welcome")
        page.get_by_role("link", name="Run now…").click()
        expect(page.get_by_label("Contact (email or phone)")).to_be_in_viewport()
        page.get_by_label("Contact (email or phone)").fill("ada@example.com")
        page.get_by_label("Event (JSON object, optional)").fill('{"source": "browser"}')
        page.get_by_role("button", name="Start run").click()
        expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
        run = run_of(runtime, uuid.UUID(page.url.rsplit("/", 1)[1]))
        assert run.contact_id == seeded.contacts["ada"]
        assert run.trigger_payload == {"source": "browser"}

    def test_a_malformed_event_keeps_the_form_with_an_error(
        self, page: Page, runtime: Runtime, workspace: Any, members: dict[str, str]
    ) -> None:
        seed(runtime, workspace.id)
        sign_in(page, ADMIN, next_path="/workflows/welcome")
        page.get_by_label("Contact (email or phone)").fill("ada@example.com")
        page.get_by_label("Event (JSON object, optional)").fill("{oops")
        page.get_by_role("button", name="Start run").click()
        expect(page.locator("#run-now-error")).to_contain_text("The event is not valid JSON")
        expect(page.get_by_label("Event (JSON object, optional)")).to_have_value("{oops")
        expect(page).to_have_url(re.compile(r"/workflows/welcome/runs$"))

    def test_the_copy_button_puts_the_webhook_url_on_the_clipboard(
        self, page: Page, context: BrowserContext, live_url: str, runtime: Runtime,
        workspace: Any, members: dict[str, str],
    ) -> None:
        install(runtime, workspace.id, HOOK)
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_url)
        sign_in(page, ADMIN, next_path="/workflows/signup-hook")
        field = page.get_by_role("textbox", name="Webhook URL")
        url = field.input_value()
        assert re.fullmatch(rf"{re.escape(live_url)}/hooks/[A-Za-z0-9_-]+", url)
        button = page.locator('button[data-copy="webhook-url"]')
        button.click()
        expect(button).to_have_text("Copied")
        assert page.evaluate("navigator.clipboard.readText()") == url
        screenshot(page, "workflows-webhook")
