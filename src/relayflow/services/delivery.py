"""Sending one delivery attempt: suppression checked at send time, the configured provider,
retries as new attempt rows, and reconciliation of a send a crash interrupted.

Guarantees (see docs/delivery.md):
- the attempt row, with the rendered content, is committed before anything is sent;
- `send_started_at` is committed (fenced by the worker's lease) just before the provider is
  called, so recovery can tell "never tried" from "interrupted while sending";
- an interrupted HTTP send is repeated with the same Idempotency-Key (the provider drops the
  repeat: exactly once when it honours the key, at least once otherwise); an interrupted
  SMTP send is never repeated (at most once): SMTP has no way to ask whether it arrived;
- a message that cannot be sent as rendered (a control character in a header, several
  recipients in `to`, an address that does not parse) is refused before "sending now" is
  committed (`refusal`): a permanent failure, never an "outcome unknown".
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from relayflow.delivery import envelope
from relayflow.delivery.base import DeliveryError, OutboundMessage
from relayflow.delivery.config import ConfigError
from relayflow.delivery.egress import AllowList
from relayflow.delivery.guarded_http import Guard
from relayflow.delivery.registry import provider_for
from relayflow.delivery.retry import backoff, parse_retry_after
from relayflow.engine.stepper import redact as engine_redact
from relayflow.services import network as network_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import read_scope
from relayflow.storage.repositories import frequency as frequency_repo
from relayflow.storage.repositories import provider_config as provider_repo

SUPPRESSION_REASONS = ("unsubscribed", "bounced", "complained")


@dataclass(frozen=True, slots=True)
class SendContext:
    """What the worker reads just before sending: current, not as of the run's start."""

    config: dict[str, Any] | None
    suppressed_by: str | None
    # The instance's and the workspace's network allow-lists together (egress policy).
    allow: AllowList = field(default_factory=AllowList)
    # The overall deadline of one provider call (Runtime.provider_timeout_seconds).
    deadline: float = 30.0

    @property
    def provider(self) -> str:
        return str((self.config or {}).get("type", "outbox"))


def read_context(runtime: Runtime, *, workspace_id: uuid.UUID, contact_id: uuid.UUID | None,
                 channel: str) -> SendContext:
    with read_scope(runtime.sessions) as session:
        config = provider_repo.config(session, workspace_id, channel)
        suppressed = provider_repo.suppressed(session, contact_id)
        allow = (network_service.allow_list(session, workspace_id=workspace_id,
                                            instance=runtime.network_allow)
                 if (config or {}).get("type") in ("http", "smtp") else AllowList())
    reason = suppressed.get(channel)
    return SendContext(config, str(reason) if reason else None, allow,
                       runtime.provider_timeout_seconds)


@dataclass(slots=True)
class Reads:
    """What a batch's messages read before they go, once for the whole batch: each
    (workspace, channel)'s provider configuration, the contacts' suppressions, the
    workspaces' allow-lists and frequency caps. Read in one transaction just before the
    batch's sends, so a change made meanwhile counts from the next batch on."""

    configs: dict[tuple[uuid.UUID, str], dict[str, Any] | None]
    suppressed: dict[uuid.UUID, dict[str, Any]]
    allow: dict[uuid.UUID, AllowList]
    caps: dict[uuid.UUID, dict[str, int]]
    deadline: float

    def context(self, *, workspace_id: uuid.UUID, contact_id: uuid.UUID | None,
                channel: str) -> SendContext:
        config = self.configs.get((workspace_id, channel))
        reason = self.suppressed.get(contact_id, {}).get(channel) if contact_id else None
        allow = (self.allow.get(workspace_id, AllowList())
                 if (config or {}).get("type") in ("http", "smtp") else AllowList())
        return SendContext(config, str(reason) if reason else None, allow, self.deadline)

    def capped(self, workspace_id: uuid.UUID, channel: str) -> bool:
        """Whether a message on `channel` takes a place under the workspace's caps."""
        return channel in self.caps.get(workspace_id, {})


def read_many(runtime: Runtime, *, messages: Iterable[tuple[uuid.UUID, uuid.UUID | None, str]],
              workspaces: Iterable[uuid.UUID] = ()) -> Reads:
    """`Reads` for these (workspace, contact, channel) messages, and the allow-lists of
    `workspaces` too (for their INTEGRATION calls), in one transaction."""
    wanted = list(messages)
    spaces = {workspace_id for workspace_id, _, _ in wanted} | set(workspaces)
    with read_scope(runtime.sessions) as session:
        configs = {(ws, channel): provider_repo.config(session, ws, channel)
                   for ws, channel in {(ws, channel) for ws, _, channel in wanted}}
        suppressed = provider_repo.suppressed_many(
            session, (contact for _, contact, _ in wanted if contact is not None))
        allow = {ws: network_service.allow_list(session, workspace_id=ws,
                                                instance=runtime.network_allow)
                 for ws in spaces}
        caps = {ws: frequency_repo.caps(session, ws)
                for ws in {workspace_id for workspace_id, _, _ in wanted}}
    return Reads(configs, suppressed, allow, caps, runtime.provider_timeout_seconds)


def refusal(*, channel: str, to: str, subject: str, headers: Mapping[str, str] | None,
            context: SendContext) -> str | None:
    """Why this message cannot be sent as rendered, or None. Checked before "sending now"
    is committed, for every provider, so such a message is a clean permanent failure."""
    sender = (context.config or {}).get("from") if context.provider == "smtp" else None
    try:
        envelope.check(channel=channel, to=to, subject=subject, headers=headers,
                       sender=str(sender) if sender is not None else None)
    except envelope.InvalidMessage as exc:
        return str(exc)
    return None


@dataclass(frozen=True, slots=True)
class Sent:
    provider_message_id: str | None
    response: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Failed:
    error: str
    response: dict[str, Any]
    retry_after: timedelta | None  # None: permanent, or no attempts left


def send(
    *, attempt_id: uuid.UUID, attempt_number: int, channel: str, to: str, subject: str,
    body: str, html: str | None, headers: Mapping[str, str] | None,
    context: SendContext, secrets: Mapping[str, str], max_attempts: int,
    retry_base: timedelta,
) -> Sent | Failed:
    """Hand one attempt to its provider (no transaction is open)."""
    invalid = refusal(channel=channel, to=to, subject=subject, headers=headers,
                      context=context)
    if invalid is not None:  # callers check first; this keeps every path safe
        return Failed(invalid, {"refused_before_sending": True}, None)
    message = OutboundMessage(
        attempt_id=str(attempt_id), channel=channel, to=to, subject=subject, body=body,
        html=html, headers=dict(headers or {}),
        idempotency_key=f"relayflow-attempt-{attempt_id}")
    try:
        provider = provider_for(channel, context.config, secrets,
                                guard=Guard(allow=context.allow), deadline=context.deadline)
    except KeyError as exc:
        return Failed(f"the provider's secret {exc.args[0]!r} does not exist", {}, None)
    except ConfigError as exc:
        return Failed(f"the {channel} provider is misconfigured: {exc}", {}, None)
    try:
        result = provider.send(message)
    except DeliveryError as exc:
        retry = None
        if exc.retryable and attempt_number < max_attempts:
            after = parse_retry_after(str(exc.response.get("retry_after") or "") or None)
            retry = backoff(attempt_number, base=retry_base, retry_after=after)
        return Failed(str(exc), exc.response, retry)
    return Sent(result.provider_message_id, result.response)


def interrupted_outcome(provider: str) -> str | None:
    """For an attempt a crash interrupted mid-send: None to send it again (safe for this
    provider), or the error to record instead."""
    if provider == "smtp":
        return ("delivery outcome unknown: the worker stopped while handing this message to "
                "the SMTP server; it is not sent again, to avoid a duplicate. Resend it if "
                "it did not arrive.")
    return None


def retry_row(*, previous: Mapping[str, Any], new_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    """The next attempt after a transient failure: same rendered content, next number."""
    keep = ("workspace_id", "run_id", "step_seq", "workflow_id", "contact_id", "channel",
            "provider", "recipient", "subject", "body", "html")
    return {**{k: previous[k] for k in keep}, "id": new_id, "status": "QUEUED",
            "attempt_number": int(previous["attempt_number"]) + 1,
            "retry_of": previous["id"], "created_at": now}


def redact(value: Any, secrets: Mapping[str, str]) -> Any:
    """Provider answers and errors can echo a credential: replace secret values."""
    loaded = secrets.loaded() if hasattr(secrets, "loaded") else dict(secrets)
    return engine_redact(value, loaded)
