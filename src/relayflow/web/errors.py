"""Every error becomes `{"error": {"code", "message", "details"}}` with its status.

`code` is the error's name (NotFound, InvalidGraph, ...), `message` a sentence for people,
and `details` whatever a program needs to act on it (e.g. `problems` for an invalid
definition, `fields` for a malformed request); `{}` when there is nothing more to say.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from relayflow.errors import InvalidInput, MalformedInput, RelayflowError, Unauthorized

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


def error_response(exc: RelayflowError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    return JSONResponse(
        error_body(type(exc).__name__, exc.detail, **exc.extra()),
        status_code=exc.status_code,
        headers=headers,
    )


async def _relayflow_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RelayflowError)
    if exc.status_code >= 500:
        log.error("request failed: %s", exc.detail, exc_info=exc)
    return error_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
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


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    name = _HTTP_ERROR_NAMES.get(exc.status_code, "HTTPError")
    detail = str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"No route for {request.method} {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return JSONResponse(error_body(name, detail), status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # The message and traceback go to the log only: they may carry SQL, paths or values.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        error_body("InternalError", "An unexpected error occurred; it has been logged."),
        status_code=500,
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(RelayflowError, _relayflow_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
