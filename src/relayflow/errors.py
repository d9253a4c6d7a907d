"""The one error hierarchy. Every expected failure is a RelayflowError with an HTTP status.

The class docstring is the default message, so `raise NotFound()` still says something useful.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self


class RelayflowError(Exception):
    """Something went wrong inside relayflow."""

    status_code: ClassVar[int] = 500
    # Why a trigger was refused, as a reason code, where the refusal is recorded
    # (services/trigger_events.py): set where the decision is made, by `because`.
    reason: str | None = None

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or (self.__doc__ or "").strip()
        super().__init__(self.detail)

    def because(self, reason: str) -> Self:
        """This error, with the reason code of the decision it reports."""
        self.reason = reason
        return self

    def extra(self) -> dict[str, Any]:
        """Extra fields for the error body (beyond `error` and `detail`)."""
        return {}


class InvalidInput(RelayflowError):
    """The request is not valid."""

    status_code = 422


class MalformedInput(RelayflowError):
    """The request body could not be parsed."""

    status_code = 400


class Unauthorized(RelayflowError):
    """A valid API key is required."""

    status_code = 401


class Forbidden(RelayflowError):
    """Your role does not allow this action."""

    status_code = 403


class NotFound(RelayflowError):
    """No such object in this workspace."""

    status_code = 404


class Conflict(RelayflowError):
    """The object is not in a state that allows this action."""

    status_code = 409


class PayloadTooLarge(RelayflowError):
    """The request body is larger than the limit."""

    status_code = 413


class RequestTimeout(RelayflowError):
    """The request did not arrive in time."""

    status_code = 408


class HeadersTooLarge(RelayflowError):
    """The request line and headers are larger than the limit."""

    status_code = 431


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a workflow definition; `node` is None for workflow-level problems."""

    node: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "message": self.message}


class InvalidGraph(InvalidInput):
    """The workflow definition is invalid."""

    def __init__(self, problems: Sequence[Problem], detail: str | None = None) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        super().__init__(detail or f"The workflow definition has {count} problem(s).")

    def extra(self) -> dict[str, Any]:
        return {"problems": [p.as_dict() for p in self.problems]}


class TooManyRequests(RelayflowError):
    """Too many requests; try again later."""

    status_code = 429

    def __init__(self, detail: str | None = None, *, retry_after: int = 60) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

    def extra(self) -> dict[str, Any]:
        return {"retry_after": self.retry_after}
