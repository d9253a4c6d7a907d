"""/api/docs in real Chromium: Swagger UI renders the API's operations from files this
server serves, with no request leaving 127.0.0.1 (any that tries is aborted, as with no
internet) and nothing refused by the pages' Content-Security-Policy."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from playwright.sync_api import BrowserContext, Page, Route, expect

from relayflow.config import Settings
from relayflow.web.app import create_app
from tests.conftest import TEST_SECRET_KEY

# Recorded by the page itself from its first script on; init scripts are not subject to
# the page's policy.
LISTEN_FOR_VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    """The app without a database: the reference and the OpenAPI document read none (the
    SQLite file named here is never made)."""
    return create_app(Settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}",
                               secret_key=TEST_SECRET_KEY,  # type: ignore[arg-type]
                               secret_key_file=str(tmp_path / "secret.key")))


def test_the_reference_renders_offline_under_the_policy(
    context: BrowserContext, page: Page, live_url: str, tmp_path: Path
) -> None:
    requested: list[str] = []
    problems: list[str] = []

    def only_loopback(route: Route) -> None:
        url = route.request.url
        requested.append(url)
        if urlsplit(url).scheme in ("http", "https") and urlsplit(url).hostname != "127.0.0.1":
            route.abort("internetdisconnected")
        else:
            route.continue_()

    context.route("**/*", only_loopback)
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.add_init_script(LISTEN_FOR_VIOLATIONS)

    response = page.goto("/api/docs")
    assert response is not None
    assert response.status == 200
    assert "script-src 'self';" in response.headers["content-security-policy"]
    runs = page.locator('.opblock-summary-path[data-path="/api/v1/runs"]')
    expect(runs.first).to_be_visible()
    expect(page.locator(".info .title")).to_contain_text("relayflow")
    assert page.locator(".opblock").count() > 30  # every operation, not a few
    page.wait_for_load_state("networkidle")

    assert page.evaluate("window.__violations") == []
    assert problems == []
    assert not (tmp_path / "unused.db").exists()
    outside = [url for url in requested if urlsplit(url).hostname not in ("127.0.0.1", None)]
    assert outside == []
    paths = {urlsplit(url).path for url in requested}
    assert {"/api/docs", "/api/docs/swagger-ui-bundle.js", "/api/docs/swagger-ui.css",
            "/static/api-docs.js", "/api/openapi.json"} <= paths
