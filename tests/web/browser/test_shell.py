"""Signing in and out in a real browser."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.web.browser.conftest import sign_in
from tests.web.conftest import ADMIN


class TestSignIn:
    def test_sign_in_lands_on_the_asked_page_and_sign_out_ends_the_session(
        self, page: Page, members: dict[str, str]
    ) -> None:
        page.goto("/runs?status=FAILED")
        expect(page).to_have_url(re.compile(r"/login\?next="))
        page.get_by_label("Email").fill(ADMIN)
        page.get_by_label("Password").fill("correct horse battery")
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(re.compile(r"/runs\?status=FAILED$"))
        expect(page.get_by_role("navigation", name="Main")).to_contain_text("Delivery ops")
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile(r"/login$"))
        page.goto("/runs")
        expect(page).to_have_url(re.compile(r"/login\?next="))

    def test_a_wrong_password_is_refused_with_a_message(
        self, page: Page, members: dict[str, str]
    ) -> None:
        page.goto("/login")
        page.get_by_label("Email").fill(ADMIN)
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
        expect(page.get_by_label("Email")).to_have_value(ADMIN)

    def test_unknown_pages_answer_404_inside_the_shell(
        self, page: Page, members: dict[str, str]
    ) -> None:
        sign_in(page, ADMIN)
        response = page.goto("/no-such-page")
        assert response is not None
        assert response.status == 404
        expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
        expect(page.get_by_role("navigation", name="Main")).to_be_visible()
