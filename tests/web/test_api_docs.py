"""/api/docs without a browser: an HTML page that loads Swagger UI from this server only
(no CDN, no inline script), under the pages' Content-Security-Policy. The browser test
(tests/web/browser/test_api_docs.py) shows it rendering."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from relayflow.config import Settings
from relayflow.web.app import create_app
from relayflow.web.security import POLICY
from tests.conftest import TEST_SECRET_KEY

_REFERENCE = re.compile(r'\b(?:src|href)="([^"]*)"')
_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The app without a database: the reference reads none (the file is never made)."""
    tmp = tmp_path_factory.mktemp("api-docs")
    app = create_app(Settings(database_url=f"sqlite:///{tmp / 'unused.db'}",
                              secret_key=TEST_SECRET_KEY,  # type: ignore[arg-type]
                              secret_key_file=str(tmp / "secret.key")))
    with TestClient(app) as test_client:
        yield test_client
    assert not (tmp / "unused.db").exists()


def _page_refs(text: str) -> list[str]:
    return _REFERENCE.findall(text)


class TestApiDocs:
    def test_the_page_loads_only_same_origin_files_under_the_policy(self, client):
        response = client.get("/api/docs")
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.headers["content-security-policy"] == POLICY
        assert response.headers["x-frame-options"] == "DENY"
        refs = _page_refs(response.text)
        assert refs, "the page references no files"
        assert all(ref.startswith("/") and not ref.startswith("//") for ref in refs), refs
        scripts = _SCRIPT.findall(response.text)
        assert len(scripts) == 2
        assert all("src=" in attrs and not body.strip() for attrs, body in scripts)
        assert 'data-openapi-url="/api/openapi.json"' in response.text
        assert "cdn." not in response.text

    def test_every_file_it_references_is_served(self, client):
        served = {}
        for ref in _page_refs(client.get("/api/docs").text):
            response = client.get(ref)
            assert response.status_code == 200, ref
            served[ref.split("?")[0]] = response
        bundle = served["/api/docs/swagger-ui-bundle.js"]
        assert bundle.headers["content-type"] == "text/javascript; charset=utf-8"
        assert bundle.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert "SwaggerUIBundle" in bundle.text[:2000]
        assert "PACKAGE_VERSION:\"5." in bundle.text  # Swagger UI 5: renders OpenAPI 3.1
        assert served["/api/docs/swagger-ui.css"].headers["content-type"] == (
            "text/css; charset=utf-8")
        assert ".swagger-ui" in served["/api/docs/swagger-ui.css"].text
        init = served["/static/api-docs.js"].text
        assert "SwaggerUIBundle(" in init
        assert "validatorUrl: null" in init
        assert "openapiUrl" in init
        assert client.get("/api/openapi.json").json()["openapi"].startswith("3.1")

    @pytest.mark.parametrize("name", ["redoc.standalone.js", "favicon.png", "..%2Fcore.py",
                                      "swagger-ui.js"])
    def test_nothing_else_of_the_package_is_served(self, client, name):
        response = client.get(f"/api/docs/{name}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "NotFound"

    def test_fastapis_cdn_page_is_gone(self, client):
        text = client.get("/api/docs").text
        assert "swagger-ui-dist@" not in text
        assert "SwaggerUIBundle(" not in text  # started from api-docs.js, not inline
