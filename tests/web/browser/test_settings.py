"""Settings in a real browser: API keys shown once, secrets by name, viewers read only."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.web.browser.conftest import screenshot, sign_in
from tests.web.conftest import ADMIN, VIEWER

CANARY = "canary-browser-S3cr3t-51c0"


class TestApiKeys:
    def test_a_new_key_is_shown_once_with_a_copy_button(
        self, page: Page, members: dict[str, str]
    ) -> None:
        sign_in(page, ADMIN, next_path="/settings/keys")
        page.get_by_label("Name").fill("CRM sync")
        page.get_by_label("Role").select_option("operator")
        page.get_by_role("button", name="Create key").click()

        shown = page.get_by_label("API key (operator)")
        expect(shown).to_have_value(re.compile(r"^rf_[0-9a-f]{8}\..{20,}$"))
        key = shown.input_value()
        prefix = key.split(".", 1)[0]
        expect(page.get_by_role("alert")).to_contain_text("cannot be shown again")
        expect(page.get_by_role("button", name="Copy")).to_be_visible()
        row = page.locator(f'tr[data-key="{prefix}"]')
        expect(row).to_contain_text("CRM sync")
        expect(row).to_contain_text("Active")
        screenshot(page, "settings-key-created")

        page.reload()

        expect(page).to_have_url(re.compile(r"/settings/keys$"))
        expect(page.get_by_label("API key (operator)")).to_have_count(0)
        expect(page.locator(f'tr[data-key="{prefix}"]')).to_be_visible()
        assert key not in page.content()
        # The reload was a GET of the list: it created no second key.
        expect(page.locator("tbody tr[data-key]")).to_have_count(2)

    def test_revoke_asks_first(self, page: Page, members: dict[str, str]) -> None:
        sign_in(page, ADMIN, next_path="/settings/keys")
        page.get_by_label("Name").fill("to revoke")
        page.get_by_role("button", name="Create key").click()
        prefix = page.get_by_label(re.compile(r"^API key")).input_value().split(".", 1)[0]
        row = page.locator(f'tr[data-key="{prefix}"]')

        row.get_by_role("button", name=re.compile("^Revoke")).click()
        dialog = page.get_by_role("dialog", name=f"Revoke key {prefix}?")
        expect(dialog).to_be_visible()
        dialog.get_by_role("button", name="Revoke key").click()

        expect(page.locator(".flash")).to_contain_text(f"Revoked API key {prefix}")
        expect(page.locator(f'tr[data-key="{prefix}"]')).to_contain_text("Revoked")


class TestSecrets:
    def test_a_secret_is_listed_by_name_only(self, page: Page, members: dict[str, str]) -> None:
        sign_in(page, ADMIN, next_path="/settings/secrets")
        page.get_by_label("Name").fill("CRM_TOKEN")
        value = page.get_by_label("Value")
        expect(value).to_have_attribute("type", "password")
        value.fill(CANARY)
        page.get_by_role("button", name="Save secret").click()

        expect(page.locator(".flash")).to_contain_text("Saved secret CRM_TOKEN")
        expect(page.get_by_role("rowheader", name="CRM_TOKEN")).to_be_visible()
        assert CANARY not in page.url
        assert CANARY not in page.content()
        expect(page.get_by_label("Value")).to_have_value("")
        screenshot(page, "settings-secrets")

    def test_provider_fields_follow_the_chosen_type(
        self, page: Page, members: dict[str, str]
    ) -> None:
        sign_in(page, ADMIN, next_path="/settings/providers")
        email = page.locator("#provider-email")
        email.get_by_text("Change the email provider").click()
        email.get_by_label("Type").select_option("smtp")
        expect(email.get_by_label("Host")).to_be_visible()
        expect(email.get_by_label("URL")).to_be_hidden()
        email.get_by_label("Host").fill("smtp.example.com")
        email.get_by_label("From").fill("ops@example.com")
        email.get_by_role("button", name="Save email provider").click()

        expect(page.locator(".flash")).to_contain_text("Saved the email provider")
        expect(email.locator("[data-provider-type-shown]")).to_have_text("smtp")


class TestViewer:
    def test_a_viewer_sees_no_admin_buttons(self, page: Page, members: dict[str, str]) -> None:
        sign_in(page, VIEWER, next_path="/settings")
        settings_nav = page.get_by_role("navigation", name="Settings")
        expect(settings_nav.get_by_role("link", name="API keys")).to_have_count(0)
        for name in ("Providers", "Secrets", "Members", "Audit log"):
            settings_nav.get_by_role("link", name=name).click()
            expect(page.get_by_role("heading", level=1)).to_have_text(name)
            expect(settings_nav.get_by_role("link", name=name)).to_have_attribute(
                "aria-current", "page")
            # Hidden ones (the audit filter's submit, replaced by auto-submit) do not count.
            expect(page.locator("main").get_by_role("button")).to_have_count(0)
            expect(page.locator("main form[method=post]")).to_have_count(0)
        screenshot(page, "settings-viewer-members")
