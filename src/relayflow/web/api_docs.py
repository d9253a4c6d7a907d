"""/api/docs: Swagger UI for /api/openapi.json, served from files installed with relayflow.

FastAPI's own docs page loads Swagger UI from a CDN and starts it with an inline script:
without internet access it stays blank, and under the pages' Content-Security-Policy
(security.py: scripts from this origin only, none inline) it is refused. Here Swagger UI's
two files come from the `fastapi-offline` package (a copy of swagger-ui-dist, kept current
with its releases) and are served under /api/docs/; templates/api_docs.html loads them and
static/api-docs.js, which starts Swagger UI. No key is needed, as for the OpenAPI document.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from relayflow.errors import NotFound
from relayflow.web.pages.templating import render

router = APIRouter(include_in_schema=False)

OPENAPI_URL = "/api/openapi.json"
# The files of Swagger UI the page uses, by name, with their media types: nothing else of
# the package's folder is served.
ASSETS = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8",
          "swagger-ui.css": "text/css; charset=utf-8"}
_PACKAGE = "fastapi_offline"


@cache
def assets_dir() -> Path:
    return Path(str(files(_PACKAGE).joinpath("static")))


@cache
def asset_url(name: str) -> str:
    """`/api/docs/<name>?v=<package version>`: cached for good until the package changes."""
    return f"/api/docs/{name}?v={version(_PACKAGE.replace('_', '-'))}"


@router.get("/api/docs", name="api_docs")
def api_docs(request: Request) -> HTMLResponse:
    return render(request, "api_docs.html", {
        "openapi_url": OPENAPI_URL, "css_url": asset_url("swagger-ui.css"),
        "bundle_url": asset_url("swagger-ui-bundle.js")})


@router.get("/api/docs/{name}", name="api_docs:asset")
def api_docs_asset(name: str) -> FileResponse:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound(f"no file {name} in the API reference")
    return FileResponse(assets_dir() / name, media_type=media_type,
                        headers={"Cache-Control": "public, max-age=31536000, immutable"})
