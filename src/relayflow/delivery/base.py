"""The provider interface and its value types."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundMessage:
    """A rendered message. `idempotency_key` is derived from the attempt id so a provider
    can drop a repeat after a crash between sending and recording."""

    attempt_id: str
    channel: str
    to: str
    subject: str
    body: str
    idempotency_key: str
    html: str | None = None
    # Extra headers for email (List-Unsubscribe, ...); ignored by channels without headers.
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class SendResult:
    provider_message_id: str | None
    response: dict[str, Any] = field(default_factory=dict)


class DeliveryError(Exception):
    """The provider refused or could not be reached; `retryable` says whether to try again."""

    def __init__(self, message: str, *, retryable: bool,
                 response: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.response = response or {}


class Provider(Protocol):
    name: str

    def send(self, message: OutboundMessage) -> SendResult: ...
