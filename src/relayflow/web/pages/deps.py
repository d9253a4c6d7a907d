"""Page dependencies: the signed-in viewer, the role checks and the CSRF check.

Every state-changing form carries the session's CSRF token (a hidden `csrf_token` field,
or the `X-CSRF-Token` header for the few fetch() calls); a POST without it, or with
another session's, is refused with 403 before anything is read from the form's fields.
The cookie is HttpOnly and SameSite=Lax on top of that.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request, Response
from starlette.datastructures import FormData

from relayflow.config import Settings
from relayflow.errors import Forbidden
from relayflow.services import login as login_service
from relayflow.services.login import Viewer
from relayflow.web.deps import RuntimeDep, SessionDep, SettingsDep, _refuse_nul

SESSION_COOKIE = "rf_session"
LOGIN_COOKIE = "rf_login"  # double-submit token for the sign-in form (no session yet)


class LoginRequired(Exception):
    """No valid session: pages redirect to /login, fetch() calls get 401."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def login_redirect_url(next_url: str) -> str:
    return f"/login?next={quote(next_url, safe='')}"


def cookie_secure(settings: Settings, request: Request) -> bool:
    if settings.cookie_secure is not None:
        return settings.cookie_secure
    public = (settings.public_url or "").lower()
    return request.url.scheme == "https" or public.startswith("https://")


def set_cookie(response: Response, request: Request, settings: Settings, name: str,
               value: str, *, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax",
                        secure=cookie_secure(settings, request), path="/")


def new_token() -> str:
    return secrets.token_urlsafe(32)


def get_viewer(request: Request, session: SessionDep, runtime: RuntimeDep) -> Viewer:
    _refuse_nul(request)
    token = request.cookies.get(SESSION_COOKIE, "")
    viewer = login_service.resolve(session, token=token, now=runtime.clock()) if token else None
    if viewer is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    request.state.viewer = viewer
    return viewer


ViewerDep = Annotated[Viewer, Depends(get_viewer)]


def get_operator(viewer: ViewerDep) -> Viewer:
    if not viewer.can_write:
        raise Forbidden(f"The {viewer.role} role can look but not change anything.")
    return viewer


OperatorDep = Annotated[Viewer, Depends(get_operator)]


def get_admin(viewer: ViewerDep) -> Viewer:
    if not viewer.is_admin:
        raise Forbidden(f"Only admins can do this; your role here is {viewer.role}.")
    return viewer


AdminDep = Annotated[Viewer, Depends(get_admin)]


def _same_token(sent: str, expected: str) -> bool:
    return bool(sent) and hmac.compare_digest(sent.encode(), expected.encode())


async def verified_form(request: Request, viewer: ViewerDep) -> FormData:
    """The POSTed form, once its CSRF token has been checked against the session's."""
    form = await request.form()
    sent = request.headers.get("X-CSRF-Token") or str(form.get("csrf_token") or "")
    if not _same_token(sent, viewer.csrf_token):
        raise Forbidden("This form has expired or did not come from relayflow; "
                        "reload the page and try again.")
    return form


FormDep = Annotated[FormData, Depends(verified_form)]


def check_login_token(request: Request, sent: str) -> None:
    if not _same_token(sent, request.cookies.get(LOGIN_COOKIE, "")):
        raise Forbidden("The sign-in form has expired; reload the page and try again.")


__all__ = ["AdminDep", "FormDep", "LoginRequired", "OperatorDep", "SettingsDep", "ViewerDep"]
