"""Real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright against the
app served by uvicorn on a loopback port. Tests here are marked `browser`.

Without Chromium the tests are skipped on a workstation but fail under CI=true: CI
installs it, so a missing browser there is a broken setup, not a reason to skip.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from tests.support.pages import PASSWORD

CHROMIUM = os.environ.get("RELAYFLOW_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
TIMEZONE = "America/New_York"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


# Module scope, not session: while Playwright's sync API is running it owns an event loop
# in the main thread, and later tests that call asyncio.run() (the SMTP ones) would fail.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium is not installed at {CHROMIUM} (CI installs it)")
        pytest.skip(f"Chromium is not installed at {CHROMIUM}")
    with sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--disable-background-networking", "--disable-extensions"],
    )
    yield launched
    launched.close()


@pytest.fixture
def context(browser: Browser, live_url: str) -> Iterator[BrowserContext]:
    ctx = browser.new_context(base_url=live_url, timezone_id=TIMEZONE, locale="en-US",
                              viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def sign_in(page: Page, email: str, password: str = PASSWORD, *, next_path: str = "/runs") -> None:
    page.goto(f"/login?next={quote(next_path, safe='')}")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(re.escape(next_path.split("?")[0])))
    # The URL changes when the response starts; the page's scripts wire their listeners
    # only once it is parsed. Acting before that (a filter's change event) does nothing.
    page.wait_for_load_state("load")


def screenshot(page: Page, name: str) -> Path:
    """Full-page PNG under tests/artifacts/ (ignored by git; CI keeps them)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
