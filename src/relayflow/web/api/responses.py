"""The error body, documented once and referenced by every endpoint's OpenAPI entry."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="The error's name, e.g. NotFound, InvalidGraph.")
    message: str = Field(description="What went wrong, for people.")
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="For programs: `problems` of an invalid definition, `fields` of a "
        "malformed request, ...",
    )


class ErrorBody(BaseModel):
    error: ErrorDetail


_DESCRIPTIONS = {
    400: "Malformed request body (e.g. invalid JSON).",
    401: "Missing, unknown or revoked API key, or a bad signature.",
    403: "Your role may read but not change this.",
    404: "No such object in this workspace.",
    409: "The object is not in a state that allows this.",
    413: "The request body is larger than 1 MiB.",
    422: "The request is not valid; `details` says where.",
    429: "Too many requests; retry after the time in Retry-After.",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each listed status with the shared error body."""
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in codes}


# What every authenticated endpoint can answer.
AUTH = (400, 401, 413, 422)
READ = (*AUTH, 404)
WRITE = (*AUTH, 403, 404, 409)
