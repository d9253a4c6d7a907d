"""Every page at phone width and for keyboard and screen-reader users: no sideways page
scroll at 390 px, one heading 1, a name for every form control, a skip link first."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from relayflow.services.runtime import Runtime
from tests.support.seed import Seeded, seed
from tests.web.browser.conftest import sign_in
from tests.web.conftest import ADMIN

UNNAMED_CONTROLS = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter((el) => el.type !== 'hidden' && el.offsetParent !== null)
  .filter((el) => {
    const named = (el.labels && el.labels.length) || el.getAttribute('aria-label')
      || el.getAttribute('aria-labelledby') || el.getAttribute('title')
      || (el.tagName === 'BUTTON' && el.textContent.trim());
    return !named;
  })
  .map((el) => el.outerHTML.slice(0, 120))"""


def pages(seeded: Seeded) -> list[str]:
    return [
        "/runs", f"/runs/{seeded.runs['payment_linus']}", f"/runs/{seeded.runs['lead_ada']}",
        "/delivery-ops", f"/delivery-ops/{seeded.attempts['welcome_ada_1h']}",
        "/workflows", "/workflows/welcome", "/contacts",
        f"/contacts/{seeded.contacts['grace']}", "/settings", "/settings/providers",
        "/settings/secrets", "/settings/keys", "/settings/network", "/settings/members",
        "/settings/frequency-caps",
        "/settings/audit",
        "/no-such-page",
    ]


@pytest.fixture
def seeded(runtime: Runtime, workspace, http_server, members) -> Seeded:
    return seed(runtime, workspace.id, http_url=http_server.url)


class TestEveryPage:
    def test_phone_width_headings_and_control_names(self, page: Page, seeded: Seeded) -> None:
        page.set_viewport_size({"width": 390, "height": 844})
        sign_in(page, ADMIN)
        problems = []
        for path in pages(seeded):
            page.goto(path)
            width = page.evaluate("document.documentElement.scrollWidth")
            if width > 390:
                problems.append(f"{path}: the page is {width} px wide at 390 px")
            if page.locator("h1").count() != 1:
                problems.append(f"{path}: {page.locator('h1').count()} h1 elements")
            unnamed = page.evaluate(UNNAMED_CONTROLS)
            if unnamed:
                problems.append(f"{path}: controls without a name: {unnamed}")
            if page.evaluate("document.documentElement.lang") != "en":
                problems.append(f"{path}: no lang attribute")
        assert problems == []

    def test_the_skip_link_comes_first_and_moves_focus_to_the_content(
        self, page: Page, seeded: Seeded
    ) -> None:
        sign_in(page, ADMIN)
        page.goto("/runs")
        page.keyboard.press("Tab")
        skip = page.get_by_role("link", name="Skip to content")
        expect(skip).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator("main#main")).to_be_focused()

    def test_statuses_carry_words_not_only_colour(self, page: Page, seeded: Seeded) -> None:
        sign_in(page, ADMIN)
        page.goto("/runs?range=30d")
        badges = page.locator("table .badge")
        assert badges.count() >= 10
        words = set(badges.all_inner_texts())
        assert {"Completed", "Failed", "Running", "Canceled"} <= {w.strip() for w in words}


class TestContentSecurityPolicy:
    def test_no_page_breaks_the_policy(self, page: Page, seeded: Seeded) -> None:
        """The strict policy holds on every page: Chromium reports any inline script or
        style it blocked as a console error, and the pages must not rely on any."""
        blocked: list[str] = []
        page.on("console", lambda msg: blocked.append(msg.text)
                if "Content Security Policy" in msg.text else None)
        sign_in(page, ADMIN)
        for path in pages(seeded):
            response = page.goto(path)
            assert response is not None
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            page.wait_for_load_state("load")
        assert blocked == []
