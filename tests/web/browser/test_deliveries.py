"""Delivery ops in a real browser: the status chips, the way from a run's SEND_MESSAGE step
to its delivery and back, and a resend through its confirmation dialog."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from relayflow.services import resend as resend_service
from relayflow.services.runtime import Runtime
from tests.support.seed import Seeded, seed
from tests.web.browser.conftest import screenshot, sign_in
from tests.web.conftest import ADMIN, OPERATOR


@pytest.fixture
def seeded(runtime: Runtime, workspace, members) -> Seeded:  # type: ignore[no-untyped-def]
    return seed(runtime, workspace.id)


def chip(page: Page, status: str):  # type: ignore[no-untyped-def]
    return page.locator(f'.chips [data-chip="{status}"]')


def table_rows(page: Page):  # type: ignore[no-untyped-def]
    return page.locator("table.deliveries tbody tr")


class TestList:
    def test_chips_and_filters_give_the_known_rows(self, page: Page, seeded: Seeded) -> None:
        sign_in(page, ADMIN, next_path="/delivery-ops")
        expect(page.get_by_role("heading", level=1)).to_have_text("Delivery ops")
        expect(table_rows(page)).to_have_count(4)
        for status, count in {"ALL": 4, "SENT": 1, "DELIVERED": 1, "BOUNCED": 1,
                              "SUPPRESSED": 1, "FAILED": 0, "QUEUED": 0}.items():
            expect(chip(page, status).locator("[data-count]")).to_have_text(str(count))
        screenshot(page, "delivery-ops")

        chip(page, "BOUNCED").click()
        expect(page).to_have_url(re.compile(r"/delivery-ops\?status=BOUNCED$"))
        expect(table_rows(page)).to_have_count(1)
        expect(table_rows(page).first).to_contain_text("grace@example.com")
        expect(table_rows(page).first).to_contain_text("Bounced")
        expect(chip(page, "BOUNCED")).to_have_attribute("aria-current", "true")

        chip(page, "ALL").click()
        page.get_by_label("Contact").fill("+1 (415) 555-0101")
        page.get_by_role("button", name="Apply").click()
        expect(page).to_have_url(re.compile(r"contact=%2B1"))
        expect(table_rows(page)).to_have_count(2)
        expect(chip(page, "ALL").locator("[data-count]")).to_have_text("2")
        expect(page.get_by_label("Contact")).to_have_value("+1 (415) 555-0101")

        page.get_by_label("Created").select_option("all")
        page.get_by_role("button", name="Apply").click()
        expect(table_rows(page)).to_have_count(3)  # ada's 40-day-old message too

    def test_custom_range_fields_appear_only_for_custom(self, page: Page,
                                                        seeded: Seeded) -> None:
        sign_in(page, ADMIN, next_path="/delivery-ops")
        expect(page.get_by_label("From (UTC)")).to_be_hidden()
        page.get_by_label("Created").select_option("custom")
        expect(page.get_by_label("From (UTC)")).to_be_visible()
        def minutes(days: int) -> str:
            return (seeded.now - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M")

        page.get_by_label("From (UTC)").fill(minutes(41))
        page.get_by_label("To (UTC)").fill(minutes(39))
        page.get_by_role("button", name="Apply").click()
        expect(page).to_have_url(re.compile(r"range=custom"))
        expect(table_rows(page)).to_have_count(1)
        expect(table_rows(page).first).to_contain_text("ada@example.com")
        expect(page.get_by_label("From (UTC)")).to_be_visible()


class TestRunToDeliveryAndBack:
    def test_follow_a_send_message_step_to_its_delivery_and_back(self, page: Page,
                                                                 seeded: Seeded) -> None:
        run_id, attempt_id = seeded.runs["welcome_ada_1h"], seeded.attempts["welcome_ada_1h"]
        sign_in(page, ADMIN, next_path=f"/runs/{run_id}")
        link = page.locator(f'a[href="/delivery-ops/{attempt_id}"]').first
        if not link.is_visible():  # the step's details are folded: open the send step
            page.locator('[data-node="send"] summary').first.click()
        link.click()
        expect(page).to_have_url(re.compile(rf"/delivery-ops/{attempt_id}$"))
        expect(page.get_by_role("heading", level=1)).to_contain_text("ada@example.com")
        expect(page.get_by_role("heading", level=1)).to_contain_text("Delivered")
        expect(page.locator(".message-body")).to_have_text("Hello Ada, glad you are here.")
        back = page.get_by_role("link", name=re.compile(r"Run \w{8} · step 1 \(send\)"))
        back.click()
        expect(page).to_have_url(re.compile(rf"/runs/{run_id}$"))


class TestResend:
    def test_resend_with_confirmation_and_a_reason_lands_on_the_new_attempt(
        self, page: Page, runtime: Runtime, seeded: Seeded
    ) -> None:
        original = seeded.attempts["welcome_ada_2h"]
        sign_in(page, OPERATOR, next_path=f"/delivery-ops/{original}")
        dialog = page.locator("dialog#resend-dialog")
        page.get_by_role("button", name="Resend…").click()
        expect(dialog).to_be_visible()
        dialog.get_by_role("button", name="Keep it").click()
        expect(dialog).to_be_hidden()

        page.get_by_role("button", name="Resend…").click()
        dialog.get_by_role("button", name="Resend", exact=True).click()
        expect(dialog).to_be_visible()  # the reason is required: nothing was sent
        expect(page).to_have_url(re.compile(rf"/delivery-ops/{original}$"))
        dialog.get_by_label("Reason").fill("Ada lost the first one")
        dialog.get_by_role("button", name="Resend", exact=True).click()

        expect(page).to_have_url(re.compile(r"/delivery-ops/[0-9a-f-]+\?notice=resent$"))
        assert str(original) not in page.url
        expect(page.locator(".flash")).to_contain_text("Resend queued")
        expect(page.get_by_role("heading", level=1)).to_contain_text("Queued")
        expect(page.locator(".origin")).to_contain_text(f"Manual resend by {OPERATOR}")
        expect(page.locator(".chain")).to_contain_text("Ada lost the first one")
        resend_service.send_queued(runtime)  # a worker sends it; the open page follows
        expect(page.get_by_role("heading", level=1)).to_contain_text("Sent")
        page.locator(f'.chain a[href="/delivery-ops/{original}"]').click()
        expect(page).to_have_url(re.compile(rf"/delivery-ops/{original}$"))

    def test_a_suppressed_contact_needs_the_override_box(self, page: Page,
                                                         seeded: Seeded) -> None:
        bounced = seeded.attempts["welcome_grace"]
        sign_in(page, OPERATOR, next_path=f"/delivery-ops/{bounced}")
        page.get_by_role("button", name="Resend…").click()
        dialog = page.locator("dialog#resend-dialog")
        expect(dialog.get_by_role("alert")).to_contain_text("suppressed (bounced)")
        dialog.get_by_label("Reason").fill("She asked for it by phone")
        dialog.get_by_role("button", name="Resend", exact=True).click()
        expect(page.locator("#resend-error")).to_contain_text("Override suppression")
        expect(page).to_have_url(re.compile(rf"/delivery-ops/{bounced}/resend$"))

        page.get_by_role("button", name="Resend…").click()
        expect(dialog.get_by_label("Reason")).to_have_value("She asked for it by phone")
        dialog.get_by_label("Override suppression").check()
        dialog.get_by_role("button", name="Resend", exact=True).click()
        expect(page).to_have_url(re.compile(r"\?notice=resent$"))
        facts = page.locator("section[aria-labelledby=facts-title]")
        expect(facts).to_contain_text("overridden by the operator")
