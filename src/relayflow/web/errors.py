"""Every error becomes `{"error": {"code", "message", "details"}}` with its status.

`code` is the error's name (NotFound, InvalidGraph, ...), `message` a sentence for people,
and `details` whatever a program needs to act on it (e.g. `problems` for an invalid
definition, `fields` for a malformed request); `{}` when there is nothing more to say.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from relayflow.errors import (
    InvalidInput,
    MalformedInput,
    RelayflowError,
    TooManyRequests,
    Unauthorized,
)
from relayflow.storage.db import is_conflict, is_unavailable
from relayflow.telemetry import metrics
from relayflow.web.pages.deps import LoginRequired, login_redirect_url
from relayflow.web.security import loggable_path

log = logging.getLogger(__name__)

# Names for the errors Starlette raises itself (routing, method mismatch).
_HTTP_ERROR_NAMES = {
    400: "MalformedInput",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "PayloadTooLarge",
}


def error_body(name: str, detail: str, **details: Any) -> dict[str, Any]:
    return {"error": {"code": name, "message": detail, "details": details}}


# Everything else is a page, and gets its errors as a page.
_MACHINE_PREFIXES = ("/api/", "/hooks/", "/providers/", "/u/", "/static/", "/healthz",
                     "/livez", "/readyz", "/metrics")
_TITLES = {400: "Bad request", 401: "Sign in required", 403: "Not allowed",
           404: "Page not found", 405: "Not allowed", 409: "Conflict",
           413: "Too large", 422: "Invalid input", 429: "Slow down"}


def wants_page(request: Request) -> bool:
    path = request.url.path
    return not (path.startswith(_MACHINE_PREFIXES) or path == "/api")


def _signed_in_viewer(request: Request) -> object | None:
    """Who is signed in, for the shell around an error raised before any page dependency
    ran (an unknown path); None when nobody is or the lookup itself fails."""
    from relayflow.services import login as login_service
    from relayflow.storage.db import session_scope
    from relayflow.web.pages.deps import SESSION_COOKIE

    token = request.cookies.get(SESSION_COOKIE)
    runtime = getattr(request.app.state, "runtime", None)
    if not token or runtime is None:
        return None
    try:
        with session_scope(runtime.sessions) as session:
            return login_service.resolve(session, token=token, now=runtime.clock())
    except Exception:  # the error page must render even when the database is down
        log.warning("could not resolve the session for an error page", exc_info=True)
        return None


async def page_error(request: Request, status: int, message: str,
                     headers: dict[str, str] | None = None) -> Response:
    from relayflow.web.pages.templating import render

    if getattr(request.state, "viewer", None) is None:
        request.state.viewer = await run_in_threadpool(_signed_in_viewer, request)

    title = _TITLES.get(status, "Something went wrong")
    return render(request, "error.html", {"status": status, "title": title,
                                          "message": message},
                  status_code=status, headers=headers)


def _headers_for(exc: RelayflowError) -> dict[str, str] | None:
    if isinstance(exc, Unauthorized):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, TooManyRequests):
        return {"Retry-After": str(exc.retry_after)}
    return None


def error_response(exc: RelayflowError) -> JSONResponse:
    headers = _headers_for(exc)
    return JSONResponse(
        error_body(type(exc).__name__, exc.detail, **exc.extra()),
        status_code=exc.status_code,
        headers=headers,
    )


async def _relayflow_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RelayflowError)
    if exc.status_code >= 500:
        log.error("request failed: %s", exc.detail, exc_info=exc)
    if wants_page(request):
        return await page_error(request, exc.status_code, exc.detail,
                          headers=_headers_for(exc) if isinstance(exc, TooManyRequests) else None)
    return error_response(exc)


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    if request.headers.get("X-Requested-With") == "fetch":
        return JSONResponse(error_body("Unauthorized", "Sign in again."), status_code=401)
    return RedirectResponse(login_redirect_url(exc.next_url), status_code=303)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if wants_page(request):
        problems = "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in errors)
        return await page_error(request, 422, f"Some values in the address or form are not "
                                        f"valid: {problems}")
    broken = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if broken is not None:
        reason = (broken.get("ctx") or {}).get("error", "JSON decode error")
        return error_response(MalformedInput(f"The request body is not valid JSON: {reason}"))
    # Only loc and message: pydantic's "input" would echo the submitted value (e.g. a secret).
    fields = [{"loc": list(e["loc"]), "message": e["msg"]} for e in errors]
    summary = "; ".join(f"{'.'.join(map(str, f['loc']))}: {f['message']}" for f in fields)
    return JSONResponse(
        error_body("InvalidInput", summary or InvalidInput().detail, fields=fields),
        status_code=InvalidInput.status_code,
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    name = _HTTP_ERROR_NAMES.get(exc.status_code, "HTTPError")
    detail = str(exc.detail)
    if wants_page(request):
        if exc.status_code == 404:
            detail = f"There is no page at {request.url.path}."
        return await page_error(request, exc.status_code, detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"No route for {request.method} {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return JSONResponse(error_body(name, detail), status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> Response:
    # The message and traceback go to the log only: they may carry SQL, paths or values.
    if isinstance(exc, SQLAlchemyError):
        metrics.database_error("unavailable" if is_unavailable(exc) else
                               "conflict" if is_conflict(exc) else "other")
    log.error("unhandled error on %s %s", request.method, loggable_path(request.url.path),
              exc_info=exc)
    if wants_page(request):
        return await page_error(request, 500, "An unexpected error occurred; it has been logged.")
    return JSONResponse(
        error_body("InternalError", "An unexpected error occurred; it has been logged."),
        status_code=500,
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(RelayflowError, _relayflow_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
