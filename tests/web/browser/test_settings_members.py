"""Settings → Members in a real browser: an admin changes a role, removes a member after
confirming (and can keep them), and resets a password shown once; the page breaks no rule
of its Content-Security-Policy."""

from __future__ import annotations

import re

from playwright.sync_api import ConsoleMessage, Page, expect

from tests.web.browser.conftest import screenshot, sign_in
from tests.web.conftest import ADMIN, OPERATOR, VIEWER


def test_an_admin_changes_removes_and_resets(page: Page, members: dict[str, str]) -> None:
    problems: list[str] = []

    def watch(message: ConsoleMessage) -> None:
        # What the Content-Security-Policy blocks is reported as a console error.
        if "Content Security Policy" in message.text:
            problems.append(message.text)

    page.on("console", watch)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    sign_in(page, ADMIN, next_path="/settings/members")
    viewer = page.locator(f'tr[data-member="{VIEWER}"]')
    operator = page.locator(f'tr[data-member="{OPERATOR}"]')

    viewer.get_by_label(f"Role of {VIEWER}").select_option("operator")
    viewer.get_by_role("button", name=re.compile("^Change")).click()
    expect(page.locator(".flash")).to_contain_text(f"Changed the role of {VIEWER}")
    expect(viewer.get_by_label(f"Role of {VIEWER}")).to_have_value("operator")

    operator.get_by_role("button", name=re.compile("^Remove")).click()
    dialog = page.get_by_role("dialog", name=f"Remove {OPERATOR}?")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Keep it").click()
    expect(dialog).to_be_hidden()
    operator.get_by_role("button", name=re.compile("^Remove")).click()
    dialog.get_by_role("button", name="Remove member").click()
    expect(page.locator(".flash")).to_contain_text(f"Removed {OPERATOR}")
    expect(page.locator(f'tr[data-member="{OPERATOR}"]')).to_have_count(0)

    viewer.get_by_role("button", name=re.compile("^Reset password")).click()
    page.get_by_role("dialog", name=f"Reset the password of {VIEWER}?").get_by_role(
        "button", name="Reset password").click()
    shown = page.get_by_label("Password", exact=True)
    expect(shown).to_have_value(re.compile(r"^[A-Za-z0-9_-]{20}$"))
    expect(page.get_by_role("button", name="Copy")).to_be_visible()
    screenshot(page, "settings-member-password-reset")
    password = shown.input_value()

    page.goto("/settings/members")

    assert password not in page.content()
    expect(page.locator(f'tr[data-member="{ADMIN}"]')).to_contain_text("the only admin")
    assert problems == []
