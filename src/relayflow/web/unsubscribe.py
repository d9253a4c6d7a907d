"""One-click unsubscribe (RFC 8058): GET shows a confirmation button, POST unsubscribes.

Mail clients POST `List-Unsubscribe=One-Click` straight from the List-Unsubscribe-Post
header; people clicking the link in the message get the page and its button. No login.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from relayflow.errors import RelayflowError
from relayflow.services import unsubscribe as unsubscribe_service
from relayflow.storage.db import session_scope
from relayflow.web.deps import RuntimeDep

router = APIRouter(tags=["unsubscribe"], include_in_schema=False)

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}}
button{{font:inherit;padding:.5rem 1rem}}</style></head>
<body><h1>{title}</h1>{body}</body></html>"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=escape(title), body=body), status_code=status)


@router.get("/u/{token}", name="unsubscribe:confirm")
def confirm(token: str, runtime: RuntimeDep) -> HTMLResponse:
    try:
        _, _, channel = unsubscribe_service.read(runtime, token)
    except RelayflowError as exc:
        return _page("Link not valid", f"<p>{escape(exc.detail)}</p>", exc.status_code)
    return _page("Unsubscribe", f'<p>Stop receiving {escape(channel)} messages from us?</p>'
                 f'<form method="post"><button type="submit">Unsubscribe</button></form>')


@router.post("/u/{token}", name="unsubscribe:apply")
def apply(token: str, runtime: RuntimeDep) -> HTMLResponse:
    try:
        with session_scope(runtime.sessions) as session:
            channel = unsubscribe_service.unsubscribe(session, runtime, text=token,
                                                      now=runtime.clock())
    except RelayflowError as exc:
        title = "Already unsubscribed" if exc.status_code == 409 else "Link not valid"
        return _page(title, f"<p>{escape(exc.detail)}</p>", exc.status_code)
    return _page("You are unsubscribed",
                 f"<p>You will not receive {escape(channel)} messages from us any more.</p>")
