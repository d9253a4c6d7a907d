"""Provider configuration per workspace and channel: parsed, validated, never holding secrets.

Secret values (SMTP password, HTTP auth token) are referenced by secret *name*; the
caller resolves them at send time, so a configuration can be shown back in full.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from relayflow.delivery import egress, envelope

PROVIDER_TYPES = ("outbox", "smtp", "http")
CHANNEL_TYPES = {"email": ("outbox", "smtp", "http"), "sms": ("outbox", "http")}
_SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class ConfigError(ValueError):
    """A provider configuration is invalid; `problems` lists every field at fault."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxConfig:
    type: Literal["outbox"] = "outbox"


@dataclass(frozen=True, slots=True, kw_only=True)
class SmtpConfig:
    type: Literal["smtp"] = "smtp"
    host: str
    port: int = 587
    tls: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password_secret: str | None = None
    from_: str = field(metadata={"key": "from"})
    timeout: float = 20.0
    # A CA bundle to trust for a private SMTP relay (PEM file path); None = system CAs.
    ca_file: str | None = None
    # The secret that signs this provider's status callbacks (delivered, bounced, ...).
    events_secret: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpConfig:
    type: Literal["http"] = "http"
    url: str
    method: str = "POST"
    auth_header_secret: str | None = None
    auth_header: str = "Authorization"
    auth_scheme: str | None = "Bearer"
    body: dict[str, Any] = field(default_factory=lambda: {"to": "{{ to }}", "text": "{{ body }}"})
    message_id_path: str | None = "body.id"
    timeout: float = 10.0
    events_secret: str | None = None


ProviderConfig = OutboxConfig | SmtpConfig | HttpConfig

_FIELDS: dict[str, set[str]] = {
    "outbox": {"type"},
    "smtp": {"type", "host", "port", "tls", "username", "password_secret", "from", "timeout",
             "ca_file", "events_secret"},
    "http": {"type", "url", "method", "auth_header_secret", "auth_header", "auth_scheme", "body",
             "message_id_path", "timeout", "events_secret"},
}


def parse(channel: str, data: Any) -> ProviderConfig:
    """Validate a provider configuration for a channel; raises ConfigError listing problems."""
    if channel not in CHANNEL_TYPES:
        raise ConfigError([f"channel must be one of {', '.join(CHANNEL_TYPES)}"])
    if not isinstance(data, dict):
        raise ConfigError(["a provider configuration must be an object with a type"])
    kind = data.get("type")
    if kind not in CHANNEL_TYPES[channel]:
        raise ConfigError([f"type must be one of {', '.join(CHANNEL_TYPES[channel])} for "
                           f"{channel}"])
    problems = [f"unknown field {name!r} for {kind}" for name in sorted(set(data) - _FIELDS[kind],
                                                                        key=str)]
    if kind == "outbox":
        config: ProviderConfig = OutboxConfig()
    elif kind == "smtp":
        config = _smtp(data, problems)
    else:
        config = _http(data, problems)
    if problems:
        raise ConfigError(problems)
    return config


def _timeout(data: dict[str, Any], default: float, problems: list[str]) -> float:
    value = data.get("timeout", default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 120:
        problems.append("timeout must be a number of seconds between 0 and 120")
        return default
    return float(value)


def _secret_name(data: dict[str, Any], key: str, problems: list[str]) -> str | None:
    value = data.get(key)
    if value is not None and (not isinstance(value, str) or not _SECRET_NAME.match(value)):
        problems.append(f"{key} must name a workspace secret (not hold the value itself)")
        return None
    return value


def _smtp(data: dict[str, Any], problems: list[str]) -> SmtpConfig:
    host, port = data.get("host"), data.get("port", 587)
    tls, sender = data.get("tls", "starttls"), data.get("from")
    if not isinstance(host, str) or not host:
        problems.append("host is required")
    else:
        try:
            egress.parse_host(host)
        except ValueError as exc:
            problems.append(f"host: {exc}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        problems.append("port must be a number from 1 to 65535")
        port = 587
    if tls not in ("starttls", "tls", "none"):
        problems.append("tls must be starttls, tls or none")
        tls = "starttls"
    if not isinstance(sender, str) or "@" not in sender:
        problems.append("from must be an email address")
    else:
        try:
            envelope.email_address(sender, field="from")
        except envelope.InvalidMessage as exc:
            problems.append(str(exc).removeprefix("not sent: "))
    username = data.get("username")
    if username is not None and not isinstance(username, str):
        problems.append("username must be a string")
    password_secret = _secret_name(data, "password_secret", problems)
    if username and not password_secret:
        problems.append("password_secret is required with a username")
    ca_file = data.get("ca_file")
    if ca_file is not None and not isinstance(ca_file, str):
        problems.append("ca_file must be a path")
    return SmtpConfig(host=str(host or ""), port=port, tls=tls, username=username,
                      password_secret=password_secret, from_=str(sender or ""),
                      timeout=_timeout(data, 20.0, problems), ca_file=ca_file,
                      events_secret=_secret_name(data, "events_secret", problems))


def _http(data: dict[str, Any], problems: list[str]) -> HttpConfig:
    url = data.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        problems.append("url must be an http:// or https:// address")
    method = str(data.get("method", "POST")).upper()
    if method not in ("POST", "PUT", "PATCH"):
        problems.append("method must be POST, PUT or PATCH")
    body = data.get("body", {"to": "{{ to }}", "text": "{{ body }}"})
    if not isinstance(body, dict):
        problems.append("body must be an object whose strings are templates")
        body = {}
    scheme = data.get("auth_scheme", "Bearer")
    if scheme is not None and not isinstance(scheme, str):
        problems.append("auth_scheme must be a string or null")
    header = data.get("auth_header", "Authorization")
    if not isinstance(header, str) or not header:
        problems.append("auth_header must be a header name")
    path = data.get("message_id_path", "body.id")
    if path is not None and not isinstance(path, str):
        problems.append("message_id_path must be a path such as body.id")
    return HttpConfig(url=str(url or ""), method=method,
                      auth_header_secret=_secret_name(data, "auth_header_secret", problems),
                      auth_header=str(header), auth_scheme=scheme, body=body,
                      message_id_path=path, timeout=_timeout(data, 10.0, problems),
                      events_secret=_secret_name(data, "events_secret", problems))


def to_dict(config: ProviderConfig) -> dict[str, Any]:
    """The JSON form (as stored and shown): `from` rather than `from_`."""
    data = asdict(config)
    if "from_" in data:
        data["from"] = data.pop("from_")
    return data


def secret_names(config: ProviderConfig) -> list[str]:
    if isinstance(config, SmtpConfig):
        names = [config.password_secret, config.events_secret]
    elif isinstance(config, HttpConfig):
        names = [config.auth_header_secret, config.events_secret]
    else:
        names = []
    return [name for name in names if name]
