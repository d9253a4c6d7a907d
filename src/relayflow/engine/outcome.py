"""The values the step function returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# --- side effects the engine asks the services layer to perform -------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpCall:
    """An INTEGRATION request. `stored` is the same request with secrets replaced by markers."""

    method: str
    url: str
    headers: dict[str, str]
    body: Any
    timeout: float
    retries: int
    stored: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class SendMessage:
    """A SEND_MESSAGE: the rendered message, exactly as it will be sent."""

    channel: str
    to: str
    subject: str
    body: str
    on_failure: str
    html: str | None = None
    unsubscribe_url: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StartRun:
    """A TRIGGER_WORKFLOW: open a run of another workflow for the same contact."""

    workflow: str


Effect = HttpCall | SendMessage | StartRun


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpResult:
    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    error: str | None = None
    error_class: str | None = None  # when no answer came: Refused, InvalidURL, Timeout, …
    attempts: int = 1
    elapsed_ms: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class SendResult:
    attempt_id: str
    status: str
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StartResult:
    run_id: str | None
    error: str | None = None


EffectResult = HttpResult | SendResult | StartResult


# --- outcomes -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Advance:
    """The node completed; go to `next`."""

    next: str
    output: dict[str, Any] = field(default_factory=dict)
    branch: str | None = None
    contact_set: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitUntil:
    """Park the run until `until`, then go to `next`."""

    until: datetime
    next: str
    output: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Finish:
    """END reached: the run is COMPLETED."""

    output: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Fail:
    """The node failed (STOP_ERROR or an error): the run is FAILED with `reason`.

    `error_class` names the kind of failure in a word or two (an exception's type, `HTTP
    503`, `NoAddress`): with the node and the reason's shape it makes the failure's
    fingerprint (engine.fingerprint), so each construction says it rather than leaving
    it to be guessed from the text."""

    reason: str
    error_class: str
    output: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Perform:
    """The node needs a side effect before it can complete; call `resume` with its result."""

    effect: Effect


Outcome = Advance | WaitUntil | Finish | Fail | Perform
