"""Contacts in a real browser: search, a contact's attributes rendered inert, and the
timeline's links to runs and deliveries."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from relayflow.services.runtime import Runtime
from tests.support.seed import XSS, Seeded, seed
from tests.web.browser.conftest import screenshot, sign_in
from tests.web.conftest import ADMIN


@pytest.fixture
def seeded(runtime: Runtime, workspace, members) -> Seeded:  # type: ignore[no-untyped-def]
    return seed(runtime, workspace.id)


class TestContacts:
    def test_search_by_phone_opens_the_contact(self, page: Page, seeded: Seeded) -> None:
        sign_in(page, ADMIN, next_path="/contacts")
        rows = page.locator("table.contacts tbody tr")
        expect(rows).to_have_count(3)
        page.get_by_role("searchbox", name="Search").fill("+44 20 7183 8750")
        page.get_by_role("button", name="Search").click()
        expect(rows).to_have_count(1)
        rows.first.get_by_role("link", name="grace@example.com").click()
        expect(page).to_have_url(re.compile(rf"/contacts/{seeded.contacts['grace']}$"))
        expect(page.get_by_role("heading", level=1)).to_have_text("grace@example.com")

    def test_a_script_attribute_is_shown_as_text_and_never_runs(self, page: Page,
                                                                seeded: Seeded) -> None:
        sign_in(page, ADMIN, next_path=f"/contacts/{seeded.contacts['grace']}")
        note = page.locator('[data-attribute="note"]')
        expect(note).to_have_text(XSS)
        expect(note).to_be_visible()
        assert page.evaluate("typeof window.__xss") == "undefined"
        screenshot(page, "contact-detail")
        page.goto("/contacts")  # the list shows the attribute too
        expect(page.locator("table.contacts")).to_contain_text("<script>window.__xss = 1")
        assert page.evaluate("typeof window.__xss") == "undefined"

    def test_timeline_links_lead_to_the_run_and_the_delivery(self, page: Page,
                                                            seeded: Seeded) -> None:
        grace = seeded.contacts["grace"]
        attempt, run = seeded.attempts["welcome_grace"], seeded.runs["welcome_grace"]
        sign_in(page, ADMIN, next_path=f"/contacts/{grace}")
        entries = page.locator("table.timeline tbody tr")
        # Her four runs and messages, the attributes her nurture run set, and the bounce
        # the provider reported.
        expect(entries).to_have_count(6)
        expect(page.locator('table.timeline tr[data-kind="attributes"]')).to_have_count(1)
        expect(page.locator(f'table.timeline tr[data-kind="callback"][data-id="{attempt}"]')
               ).to_contain_text("hard bounce")
        bounced = page.locator(f'table.timeline tr[data-kind="delivery"][data-id="{attempt}"]')
        expect(bounced).to_contain_text("Bounced")
        bounced.locator(f'a[href="/delivery-ops/{attempt}"]').click()
        expect(page).to_have_url(re.compile(rf"/delivery-ops/{attempt}$"))
        expect(page.get_by_role("heading", level=1)).to_contain_text("grace@example.com")
        page.go_back()
        page.locator(f'table.timeline tr[data-id="{run}"]').locator(
            f'a[href="/runs/{run}"]').click()
        expect(page).to_have_url(re.compile(rf"/runs/{run}$"))
        page.go_back()
        page.get_by_role("link", name="All deliveries").click()
        expect(page).to_have_url(re.compile(rf"/delivery-ops\?contact={grace}&range=all$"))
        expect(page.locator("table.deliveries tbody tr")).to_have_count(1)


class TestWhyNot:
    def test_from_a_bounced_message_to_the_verdict_and_its_evidence(self, page: Page,
                                                                    seeded: Seeded) -> None:
        """From the attempt's page, "Why not?" opens the contact's panel with the workflow
        picked; it says "Not sent" in one sentence, then the bounce with a link to it."""
        grace, attempt = seeded.contacts["grace"], seeded.attempts["welcome_grace"]
        sign_in(page, ADMIN, next_path=f"/delivery-ops/{attempt}")
        page.get_by_role("link", name="Why not?").click()
        expect(page).to_have_url(re.compile(rf"/contacts/{grace}\?why=welcome#why$"))
        panel = page.locator("#why")
        expect(panel.locator("[data-verdict]")).to_have_attribute("data-verdict", "not_sent")
        expect(panel.locator("[data-verdict]")).to_contain_text("Not sent")
        expect(panel.get_by_label("Workflow")).to_have_value("welcome")
        bounced = panel.locator('li[data-code="bounced"]')
        expect(bounced).to_contain_text("The message bounced.")
        screenshot(page, "contact-why-not")
        bounced.get_by_role("link", name=re.compile("^message ")).click()
        expect(page).to_have_url(re.compile(rf"/delivery-ops/{attempt}$"))

    def test_picking_another_workflow_explains_it(self, page: Page, seeded: Seeded) -> None:
        ada = seeded.contacts["ada"]
        sign_in(page, ADMIN, next_path=f"/contacts/{ada}")
        panel = page.locator("#why")
        panel.get_by_label("Workflow").select_option("welcome")
        panel.get_by_label("Range").select_option("30d")
        panel.get_by_role("button", name="Explain").click()
        expect(panel.locator("[data-verdict]")).to_have_attribute("data-verdict", "delivered")
        expect(panel.locator('li[data-code="delivered"]')).to_have_count(1)
