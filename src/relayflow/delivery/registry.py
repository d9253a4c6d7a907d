"""Build the provider configured for a workspace's channel."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from relayflow.delivery.base import Provider
from relayflow.delivery.config import HttpConfig, OutboxConfig, SmtpConfig, parse
from relayflow.delivery.guarded_http import Guard
from relayflow.delivery.http_provider import HttpMessageProvider
from relayflow.delivery.outbox import OutboxProvider
from relayflow.delivery.smtp import DEFAULT_DEADLINE, SmtpEmailProvider


def provider_for(channel: str, config: Mapping[str, Any] | None = None,
                 secrets: Mapping[str, str] | None = None, *,
                 guard: Guard | None = None, deadline: float = DEFAULT_DEADLINE) -> Provider:
    """The provider configured for a channel (the outbox until one is configured).

    `secrets` resolves the secret names the configuration refers to; a missing secret
    raises KeyError, which the caller reports as a failed attempt. `guard` is the egress
    policy for providers that reach a server (the default refuses private targets);
    `deadline` bounds one SMTP or HTTP call as a whole."""
    if not config:
        return OutboxProvider()
    parsed = parse(channel, dict(config))
    values = secrets or {}
    if isinstance(parsed, SmtpConfig):
        password = values[parsed.password_secret] if parsed.password_secret else None
        return SmtpEmailProvider(parsed, password=password, guard=guard, deadline=deadline)
    if isinstance(parsed, HttpConfig):
        token = values[parsed.auth_header_secret] if parsed.auth_header_secret else None
        return HttpMessageProvider(parsed, token=token, guard=guard, deadline=deadline)
    assert isinstance(parsed, OutboxConfig)
    return OutboxProvider()
