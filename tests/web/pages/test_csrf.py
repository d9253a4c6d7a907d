"""Every state-changing page route checks the CSRF token (FormDep) before anything else.

The routes are read from the app, so a page POST added later without FormDep fails here.
"""

from __future__ import annotations

import re
import uuid

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

# Machine endpoints with their own authentication, and the sign-in form (no session yet).
NOT_PAGES = ("/api", "/hooks", "/providers", "/u/", "/login", "/static")
_PARAM = re.compile(r"\{[^}]+\}")
CSRF_MESSAGE = "did not come from relayflow"


def page_post_paths(app: FastAPI) -> list[str]:
    """Path templates of every POST route that serves pages (through included routers)."""
    found = set()
    for route in iter_route_contexts(app.routes):
        path = route.path
        if path and "POST" in (route.methods or ()) and not path.startswith(NOT_PAGES):
            found.add(path)
    return sorted(found)


class TestCsrf:
    def test_the_page_routes_are_found(self, app: FastAPI) -> None:
        paths = page_post_paths(app)
        for expected in ("/logout", "/workspace", "/settings/secrets",
                         "/settings/keys/{prefix}/revoke"):
            assert expected in paths
        assert not [p for p in paths if p.startswith("/api")]

    def test_every_page_post_without_a_valid_token_is_refused_first(
        self, app: FastAPI, page_client: TestClient
    ) -> None:
        # A fake id for every path parameter: the token is checked before any lookup, so
        # the answer is 403, never 404 or 422.
        fake = str(uuid.uuid4())
        refused: dict[str, list[int]] = {}
        for template in page_post_paths(app):
            path = _PARAM.sub(fake, template)
            missing = page_client.post(path, data={"reason": "x"}, follow_redirects=False)
            forged = page_client.post(path, data={"csrf_token": "forged"},
                                      follow_redirects=False)
            refused[template] = [missing.status_code, forged.status_code]
            for answer in (missing, forged):
                assert answer.status_code != 403 or CSRF_MESSAGE in answer.text, template
        assert {t: s for t, s in refused.items() if s != [403, 403]} == {}
        # Still signed in: no POST above did anything, sign-out included.
        assert page_client.get("/settings", follow_redirects=False).status_code == 200
