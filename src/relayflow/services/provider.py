"""The delivery provider of each channel in a workspace: set, shown, removed.

A stored configuration names its secrets and never holds their values; the worker resolves
them at send time. No row means the embedded outbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from relayflow.delivery import config as provider_config
from relayflow.delivery import egress, smtp
from relayflow.delivery.base import DeliveryError
from relayflow.delivery.egress import AllowList
from relayflow.delivery.guarded_http import Guard, resolve_target
from relayflow.errors import InvalidInput, NotFound
from relayflow.services import network as network_service
from relayflow.services import secret as secret_service
from relayflow.services import workspace as workspace_service
from relayflow.storage.models import Provider
from relayflow.storage.repositories import provider as provider_repo

CHANNELS = tuple(provider_config.CHANNEL_TYPES)
OUTBOX: dict[str, Any] = {"type": "outbox"}


class InvalidProvider(InvalidInput):
    """The provider configuration is invalid."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"The provider configuration has {len(problems)} problem(s).")

    def extra(self) -> dict[str, Any]:
        return {"problems": list(self.problems)}


def _check_channel(channel: str) -> None:
    if channel not in CHANNELS:
        raise NotFound(f"no channel {channel!r}; use {', '.join(CHANNELS)}")


def config_for(session: Session, *, workspace_id: uuid.UUID, channel: str) -> dict[str, Any] | None:
    """The stored configuration of a channel, or None when the outbox (the default) applies."""
    row = provider_repo.get(session, workspace_id, channel)
    return dict(row.config) if row is not None else None


def show(session: Session, *, workspace_id: uuid.UUID, channel: str) -> dict[str, Any]:
    """What GET shows: the stored configuration, or the outbox when none is set."""
    _check_channel(channel)
    return config_for(session, workspace_id=workspace_id, channel=channel) or dict(OUTBOX)


def show_all(session: Session, *, workspace_id: uuid.UUID) -> dict[str, dict[str, Any]]:
    stored = {p.channel: dict(p.config) for p in provider_repo.list_all(session, workspace_id)}
    return {channel: stored.get(channel, dict(OUTBOX)) for channel in CHANNELS}


def put(
    session: Session, *, workspace_id: uuid.UUID, channel: str, data: Any, now: datetime,
    actor: str = "system", network_allow: AllowList | None = None,
) -> dict[str, Any]:
    """Validate and store a channel's configuration (replacing any); returns what is stored.

    An SMTP host must pass the egress policy: `network_allow` is the instance's allow-list
    (RELAYFLOW_NETWORK_ALLOW; none given: nothing private is allowed) and the workspace's
    own list adds to it. The worker checks again at every send."""
    _check_channel(channel)
    try:
        parsed = provider_config.parse(channel, data)
    except provider_config.ConfigError as exc:
        raise InvalidProvider(list(exc.problems)) from exc
    if isinstance(parsed, provider_config.SmtpConfig | provider_config.HttpConfig):
        allow = network_service.allow_list(session, workspace_id=workspace_id,
                                           instance=network_allow or AllowList())
        refused = (_host_refused(parsed, allow)
                   if isinstance(parsed, provider_config.SmtpConfig)
                   else _url_refused(parsed, allow))
        if refused is not None:
            raise InvalidProvider([refused])
    known = secret_service.names(session, workspace_id)
    missing = [n for n in provider_config.secret_names(parsed) if n not in known]
    if missing:
        raise InvalidProvider([f"unknown secret {name!r}: set it first with PUT "
                               f"/api/v1/secrets/{name}" for name in missing])
    stored = provider_config.to_dict(parsed)
    row = provider_repo.get(session, workspace_id, channel)
    if row is None:
        provider_repo.add(session, Provider(workspace_id=workspace_id, channel=channel,
                                            config=stored, created_at=now, updated_at=now))
    else:
        row.config = stored
        row.updated_at = now
    workspace_service.audit(session, workspace_id=workspace_id, actor=actor,
                            action="provider.set", target_type="provider", target_id=channel,
                            now=now, detail={"channel": channel, "type": stored["type"]})
    return stored


def _host_refused(config: provider_config.SmtpConfig, allow: AllowList) -> str | None:
    """Why the egress policy refuses the SMTP host, or None. A name that does not resolve
    now is accepted: it may later, and every send checks what it then resolves to."""
    try:
        smtp.vetted_addresses(config.host, config.port, Guard(allow=allow))
    except DeliveryError as exc:
        return None if exc.retryable else f"host: {exc}"
    return None


def _url_refused(config: provider_config.HttpConfig, allow: AllowList) -> str | None:
    """Why the egress policy refuses the HTTP provider's URL, or None; a name that does not
    resolve now is accepted, as for SMTP hosts (every send checks again)."""
    try:
        target = egress.parse_target(config.url)
        try:
            addresses = resolve_target(target, Guard(allow=allow))
        except Exception:  # the resolver's own error type (httpx.ConnectError)
            return None
        egress.check(target, addresses, allow)
    except egress.Refused as exc:
        return f"url: {exc}"
    return None


def delete(
    session: Session, *, workspace_id: uuid.UUID, channel: str, now: datetime,
    actor: str = "system",
) -> dict[str, Any]:
    """Back to the outbox. Deleting when none is set is not an error (the result is the same)."""
    _check_channel(channel)
    removed = provider_repo.remove(session, workspace_id, channel)
    workspace_service.audit(session, workspace_id=workspace_id, actor=actor,
                            action="provider.delete", target_type="provider", target_id=channel,
                            now=now, detail={"channel": channel, "removed": bool(removed)})
    return dict(OUTBOX)


def channel_types() -> dict[str, tuple[str, ...]]:
    """The provider types each channel accepts (email: outbox, smtp, http; sms: outbox, http)."""
    return {channel: tuple(kinds) for channel, kinds in provider_config.CHANNEL_TYPES.items()}


def stored_all(session: Session, *, workspace_id: uuid.UUID) -> dict[str, dict[str, Any] | None]:
    """Each channel's stored configuration, None where none is set (the outbox applies)."""
    stored = {p.channel: dict(p.config) for p in provider_repo.list_all(session, workspace_id)}
    return {channel: stored.get(channel) for channel in CHANNELS}


def secrets_in_use(session: Session, *, workspace_id: uuid.UUID) -> dict[str, list[str]]:
    """Secret name -> the channels whose provider names it (a `*_secret` field)."""
    used: dict[str, list[str]] = {}
    for channel, config in stored_all(session, workspace_id=workspace_id).items():
        for key, value in sorted((config or {}).items()):
            if key.endswith("_secret") and isinstance(value, str) and value:
                used.setdefault(value, [])
                if channel not in used[value]:
                    used[value].append(channel)
    return used
