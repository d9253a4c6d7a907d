"""Sign in, sign out and switch workspace."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from relayflow.errors import TooManyRequests, Unauthorized
from relayflow.services import login as login_service
from relayflow.web.deps import RuntimeDep, SessionDep, SettingsDep
from relayflow.web.pages.deps import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    FormDep,
    ViewerDep,
    check_login_token,
    new_token,
    set_cookie,
)
from relayflow.web.pages.templating import render

router = APIRouter()
HOME = "/runs"


def safe_next(value: str | None) -> str:
    """Only a path on this site: never `//host` or `https://…` (an open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return HOME
    return value


def _login_page(request: Request, settings: SettingsDep, *, next_url: str, email: str = "",
                error: str | None = None, status_code: int = 200,
                headers: dict[str, str] | None = None) -> Response:
    token = new_token()
    response = render(request, "login.html", {
        "next": next_url, "email": email, "error": error, "login_token": token,
    }, status_code=status_code, headers=headers)
    set_cookie(response, request, settings, LOGIN_COOKIE, token, max_age=3600)
    return response


@router.get("/", include_in_schema=False)
def home() -> RedirectResponse:
    return RedirectResponse(HOME, status_code=303)


@router.get("/login", name="pages:login")
def login_form(request: Request, settings: SettingsDep, next: str | None = None) -> Response:
    return _login_page(request, settings, next_url=safe_next(next))


@router.post("/login", name="pages:login_submit")
def login_submit(
    request: Request, session: SessionDep, runtime: RuntimeDep, settings: SettingsDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    login_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = HOME,
) -> Response:
    check_login_token(request, login_token)
    address = request.client.host if request.client else "unknown"
    try:
        token, _viewer = login_service.login(session, email=email, password=password,
                                             address=address, now=runtime.clock())
    except TooManyRequests as exc:
        return _login_page(request, settings, next_url=safe_next(next), email=email,
                           error=exc.detail, status_code=429,
                           headers={"Retry-After": str(exc.retry_after)})
    except Unauthorized as exc:
        # Returned, not raised: the failed attempt must be committed to be counted.
        return _login_page(request, settings, next_url=safe_next(next), email=email,
                           error=exc.detail, status_code=401)
    response = RedirectResponse(safe_next(next), status_code=303)
    set_cookie(response, request, settings, SESSION_COOKIE, token,
               max_age=int(login_service.SESSION_LIFETIME.total_seconds()))
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


@router.post("/logout", name="pages:logout")
def logout(request: Request, session: SessionDep, _form: FormDep) -> Response:
    login_service.logout(session, token=request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/workspace", name="pages:switch_workspace")
def switch_workspace(
    request: Request, session: SessionDep, runtime: RuntimeDep, _viewer: ViewerDep,
    form: FormDep,
) -> Response:
    slug = str(form.get("workspace") or "")
    login_service.switch_workspace(session, token=request.cookies.get(SESSION_COOKIE, ""),
                                   slug=slug, now=runtime.clock())
    # Ids differ between workspaces, so a detail page would 404: land on the list instead.
    return RedirectResponse(HOME, status_code=303)
