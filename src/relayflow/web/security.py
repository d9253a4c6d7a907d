"""Security headers on every HTML page.

The pages use no inline script, no inline event handler and no inline style attribute,
so the policy can be strict: scripts, styles and everything else only from this origin.
`'unsafe-inline'` for styles is kept for one reason: an HTML email shown in its sandboxed
preview frame inherits this policy, and emails are styled inline. The frame's sandbox
(no scripts, no same origin) and its own stricter policy still apply. Pages may not be
framed by other sites (clickjacking), and API responses are left as they are.
"""

from __future__ import annotations

import logging
import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
          "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
          "frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if headers.get("content-type", "").startswith("text/html"):
                    for name, value in HEADERS.items():
                        headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


# Paths whose next segment is a credential: a webhook's token, a signed unsubscribe link.
_TOKEN_PATH = re.compile(r"^(/hooks/|/u/)[^/?]+")
# A query parameter's value: `?q=ada@example.com`, `?contact=+14155550123`.
_QUERY_VALUE = re.compile(r"([?&][^=&#]*=)[^&#]*")


def loggable_path(path: str) -> str:
    """`path` as a log line may show it: the token of /hooks/{token} and /u/{token} is a
    credential (anyone holding it can trigger the workflow or unsubscribe the contact), and
    a query's values may be personal data (a search for an address, a contact filter), so
    each is replaced by an ellipsis; the route and the query's keys stay readable."""
    return _QUERY_VALUE.sub(r"\1…", _TOKEN_PATH.sub(r"\1…", path))


class AccessLogTokens(logging.Filter):
    """Takes the tokens out of uvicorn's access log lines (see loggable_path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], loggable_path(args[2]), *args[3:])
        return True
