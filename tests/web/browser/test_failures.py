"""What an operator does on real pages after a bad night: /failures groups the failures by
cause, "View runs" lists one cause's runs, "Retry all…" shows the dry run before its
button, and the operation's page follows the workers live to the end."""

from __future__ import annotations

import re
import threading

from playwright.sync_api import Page, expect
from sqlalchemy import select, update

from relayflow.services import bulk
from relayflow.services.runtime import Runtime
from relayflow.storage.models import BulkOperation
from tests.conftest import WorkspaceHandle
from tests.support.flows import install, run_of, start
from tests.support.worker import drain
from tests.web.browser.conftest import screenshot, sign_in
from tests.web.conftest import OPERATOR

DECLINE = {"key": "billing", "name": "Billing", "trigger": {"type": "manual"},
           "start": "charge", "nodes": {"charge": {
               "type": "STOP_ERROR",
               "message": "card {{ event.card }} declined for {{ contact.email }}"}}}


def _failed(runtime: Runtime, workspace: WorkspaceHandle, n: int) -> list:
    install(runtime, workspace.id, DECLINE)
    ids = [start(runtime, workspace.id, "billing", email=f"c{i}@example.com",
                 event={"card": 4000 + i})[0] for i in range(n)]
    drain(runtime)
    return ids


class TestFailuresPage:
    def test_one_cause_its_runs_and_a_bulk_retry_followed_live(
            self, page: Page, members: dict[str, str], runtime: Runtime,
            workspace: WorkspaceHandle) -> None:
        ids = _failed(runtime, workspace, 6)
        fingerprint = run_of(runtime, ids[0]).fingerprint
        sign_in(page, OPERATOR, next_path="/failures")
        rows = page.locator("table.failures tbody tr")
        expect(rows).to_have_count(1)
        row = rows.first
        expect(row).to_have_attribute("data-fingerprint", fingerprint)
        expect(row.locator(".pattern")).to_have_text(
            "card <number> declined for <email>")
        expect(row.get_by_role("img")).to_have_attribute(
            "aria-label", re.compile(r"^6 over the range"))
        expect(row.locator("td.num").first).to_have_text("6")
        screenshot(page, "failures")

        row.get_by_role("link", name="View runs").click()
        expect(page).to_have_url(re.compile(rf"fingerprint={fingerprint}"))
        expect(page.get_by_role("status")).to_contain_text("Failed runs of one cause")
        expect(page.locator("tbody tr[data-run-id]")).to_have_count(6)

        page.go_back()
        page.locator("table.failures tbody tr").first.get_by_role(
            "link", name="Retry all…").click()
        expect(page.get_by_role("heading", name="Dry run")).to_be_visible()
        expect(page.locator(".bulk-count")).to_contain_text("6 runs match; 6 would be retried")
        expect(page.locator("tr[data-sample]")).to_have_count(6)
        page.get_by_label("Reason").fill("processor back up")
        page.get_by_role("button", name="Retry 6 runs").click()
        expect(page).to_have_url(re.compile(r"/bulk-operations/[0-9a-f-]{36}$"))
        expect(page.locator("[data-field=status]")).to_have_text("Running")
        expect(page.locator("[data-field=acted]")).to_have_text("0")

        # A worker acts while the page is open, two runs a second: the bar and the counts
        # follow it, then the page reloads once the operation has finished.
        with runtime.sessions.begin() as session:
            session.execute(update(BulkOperation).values(rate=2.0))
        worker = threading.Thread(target=_act, args=(runtime,), daemon=True)
        worker.start()
        expect(page.locator("[data-field=acted]")).to_have_text(re.compile(r"^[2-5]$"),
                                                                 timeout=10_000)
        expect(page.locator("[data-field=status]")).to_have_text("Running")
        expect(page.locator("[data-field=status]")).to_have_text("Completed", timeout=15_000)
        worker.join(10)
        expect(page.locator("[data-field=done]")).to_have_text("6")
        expect(page.locator("progress").first).to_have_attribute("value", "6")
        expect(page.locator('tr[data-state="DONE"]')).to_have_count(6)
        screenshot(page, "bulk-operation")


def _act(runtime: Runtime) -> None:
    """A worker of the test's own: one item a tick, slow enough to be watched."""
    import time

    for _ in range(200):
        if bulk.advance(runtime, worker="browser-test") == 0:
            with runtime.sessions() as session:
                if session.scalar(select(BulkOperation.status)) != "RUNNING":
                    return
        time.sleep(0.3)
