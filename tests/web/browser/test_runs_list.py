"""Run history (/runs) in a real browser: chips, the filter form, paging, a live row and
local times, against the known history of tests/support/seed.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from relayflow.services import run as run_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from tests.support.seed import Seeded, seed
from tests.web.browser.conftest import TIMEZONE, screenshot, sign_in
from tests.web.conftest import ADMIN

# Newest first, as seed.py lays them out (the 40-day-old run is outside the default 30d).
NEWEST_FIRST = ["nurture_linus", "lead_ada", "nurture_ada", "payment_linus", "welcome_linus",
                "welcome_ada_1h", "welcome_ada_2h", "nurture_grace", "welcome_grace",
                "payment_grace"]
CHIPS = {"All": (10, NEWEST_FIRST),
         "Running": (2, ["nurture_linus", "nurture_ada"]),
         "Completed": (5, ["lead_ada", "welcome_linus", "welcome_ada_1h", "welcome_ada_2h",
                           "welcome_grace"]),
         "Failed": (2, ["payment_linus", "payment_grace"]),
         "Canceled": (1, ["nurture_grace"])}


@pytest.fixture
def seeded(runtime: Runtime, workspace, http_server, members) -> Seeded:
    return seed(runtime, workspace.id, http_url=http_server.url)


def shown(page: Page, seeded: Seeded) -> list[str]:
    by_id = {str(run_id): label for label, run_id in seeded.runs.items()}
    ids = page.locator("table.runs-table tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.runId)")
    return [by_id.get(i, i) for i in ids]


def expect_rows(page: Page, seeded: Seeded, expected: list[str]) -> None:
    expect(page.locator("table.runs-table tbody tr")).to_have_count(len(expected))
    assert shown(page, seeded) == expected


def chip(page: Page, label: str):  # type: ignore[no-untyped-def]
    return page.get_by_role("navigation", name="Run status").get_by_role(
        "link", name=re.compile(rf"^{label}\b"))


class TestRunHistory:
    def test_each_chip_shows_its_runs_and_every_count(self, page: Page, seeded: Seeded):
        sign_in(page, ADMIN)
        for label, (count, _) in CHIPS.items():
            expect(chip(page, label).locator("[data-count]")).to_have_text(str(count))
        for label, (_, rows) in CHIPS.items():
            chip(page, label).click()
            expect(chip(page, label)).to_have_attribute("aria-current", "true")
            expect_rows(page, seeded, rows)
            for other, (count, _) in CHIPS.items():  # counts ignore the status filter
                expect(chip(page, other).locator("[data-count]")).to_have_text(str(count))
        page.goto("/runs")
        expect_rows(page, seeded, NEWEST_FIRST)
        expect(page.locator("figure.volume")).to_have_attribute("data-total", "10")
        screenshot(page, "runs")

    def test_the_filter_form(self, page: Page, seeded: Seeded, settings):
        sign_in(page, ADMIN)
        page.get_by_label("Workflow").select_option(label="Welcome email (welcome)")
        expect(page).to_have_url(re.compile(r"/runs\?workflow=welcome$"))
        expect_rows(page, seeded, ["welcome_linus", "welcome_ada_1h", "welcome_ada_2h",
                                   "welcome_grace"])
        page.get_by_label("Workflow").select_option(label="All workflows")
        expect(page).to_have_url(re.compile(r"/runs$"))
        page.get_by_label("Contact").fill("ada@example.com")
        page.get_by_label("Contact").press("Enter")
        expect(page).to_have_url(re.compile(r"contact=ada%40example.com"))
        ada = ["lead_ada", "nurture_ada", "welcome_ada_1h", "welcome_ada_2h"]
        expect_rows(page, seeded, ada)
        page.get_by_label("Contact").fill("+1 415-555-0101")
        page.get_by_role("button", name="Apply").click()
        expect(page.get_by_label("Contact")).to_have_value("+1 415-555-0101")
        expect_rows(page, seeded, ada)
        page.get_by_label("Contact").fill("no-one@example.com")
        page.get_by_label("Contact").press("Enter")
        expect(page.get_by_text("No runs match these filters")).to_be_visible()
        page.get_by_role("link", name="Clear filters").first.click()
        expect(page).to_have_url(re.compile(r"/runs$"))
        expect_rows(page, seeded, NEWEST_FIRST)

    def test_the_search_box(self, page: Page, seeded: Seeded):
        sign_in(page, ADMIN)
        page.get_by_label("Search").fill("grace")
        page.get_by_label("Search").press("Enter")
        expect(page).to_have_url(re.compile(r"/runs\?q=grace$"))
        expect_rows(page, seeded, ["nurture_grace", "welcome_grace", "payment_grace"])
        expect(chip(page, "All").locator("[data-count]")).to_have_text("3")
        page.get_by_label("Workflow").select_option(label="Welcome email (welcome)")
        expect(page).to_have_url(re.compile(r"q=grace&workflow=welcome$"))
        expect_rows(page, seeded, ["welcome_grace"])
        page.get_by_label("Search").fill('label:"nobody here"')
        page.get_by_role("button", name="Apply").click()
        expect(page.get_by_text("No runs match these filters")).to_be_visible()
        page.get_by_label("Search").fill('label:"unclosed')
        page.get_by_label("Search").press("Enter")
        expect(page.get_by_role("alert")).to_contain_text("is not closed")

    def test_the_date_range_changes_the_rows(self, page: Page, seeded: Seeded):
        sign_in(page, ADMIN)
        expect(page.get_by_label("From")).to_be_hidden()
        page.get_by_label("Created").select_option(label="Last 24 hours")
        expect(page).to_have_url(re.compile(r"range=24h"))
        expect_rows(page, seeded, NEWEST_FIRST[:8])
        expect(chip(page, "All").locator("[data-count]")).to_have_text("8")
        page.get_by_label("Created").select_option(label="Last 30 days")
        expect(page).to_have_url(re.compile(r"/runs$"))
        expect_rows(page, seeded, NEWEST_FIRST)
        page.get_by_label("Created").select_option(label="Custom range")
        expect(page.get_by_label("From")).to_be_visible()
        page.get_by_role("button", name="Apply").click()  # no bounds: every run
        expect(page).to_have_url(re.compile(r"range=custom"))
        expect_rows(page, seeded, [*NEWEST_FIRST, "welcome_ada_old"])

    def test_older_and_newer_pages(self, page: Page, seeded: Seeded):
        sign_in(page, ADMIN, next_path="/runs?limit=3")
        expect_rows(page, seeded, NEWEST_FIRST[:3])
        newer = page.get_by_role("navigation", name="Pages").get_by_text("← Newer")
        older = page.get_by_role("navigation", name="Pages").get_by_text("Older →")
        expect(newer).to_have_attribute("aria-disabled", "true")
        older.click()
        expect_rows(page, seeded, NEWEST_FIRST[3:6])
        older.click()
        expect_rows(page, seeded, NEWEST_FIRST[6:9])
        assert "limit=3" in page.url
        newer.click()
        expect_rows(page, seeded, NEWEST_FIRST[3:6])
        newer.click()
        expect_rows(page, seeded, NEWEST_FIRST[:3])
        expect(newer).to_have_attribute("aria-disabled", "true")

    def test_a_running_row_turns_canceled_without_a_reload(
        self, page: Page, seeded: Seeded, runtime: Runtime, workspace
    ):
        sign_in(page, ADMIN)
        row = page.locator(f'tr[data-run-id="{seeded.runs["nurture_ada"]}"]')
        expect(row.locator(".badge")).to_have_text("Running")
        expect(row).to_contain_text("waiting at pause until")
        page.evaluate("window.__marker = 'still here'")
        with session_scope(runtime.sessions) as session:
            run_service.cancel(session, workspace_id=workspace.id,
                               run_id=seeded.runs["nurture_ada"], actor=ADMIN,
                               now=datetime.now(UTC))
        expect(row.locator(".badge")).to_have_text("Canceled", timeout=15_000)
        expect(row).not_to_have_attribute("data-live-url", re.compile(".*"))
        assert page.evaluate("window.__marker") == "still here"
        expect(chip(page, "Canceled").locator("[data-count]")).to_have_text("2", timeout=20_000)
        assert page.evaluate("window.__marker") == "still here"

    def test_times_are_shown_in_the_viewers_zone_with_utc_on_hover(
        self, page: Page, seeded: Seeded
    ):
        sign_in(page, ADMIN)
        row = page.locator(f'tr[data-run-id="{seeded.runs["welcome_ada_1h"]}"]')
        stamp = row.locator(".run-started time")
        utc = datetime.fromisoformat(stamp.get_attribute("datetime") or "")
        local = utc.astimezone(ZoneInfo(TIMEZONE))
        expect(stamp).to_contain_text(local.strftime("%I:%M:%S %p"))
        expect(stamp).to_have_attribute(
            "title", f"{utc:%Y-%m-%d %H:%M:%S} UTC · shown in {TIMEZONE}")
        expect(page.locator("figure.volume")).to_contain_text(f"times in {TIMEZONE}")

    def test_usable_on_a_narrow_screen(self, page: Page, seeded: Seeded):
        page.set_viewport_size({"width": 390, "height": 844})
        sign_in(page, ADMIN)
        expect_rows(page, seeded, NEWEST_FIRST)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        expect(page.get_by_label("Contact")).to_be_visible()
        screenshot(page, "runs-mobile")
