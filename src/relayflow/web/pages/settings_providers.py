"""Settings → Providers: each channel's provider, shown with secret names (never values),
and changed (admins) through the same validation as PUT /api/v1/providers/{channel}."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from relayflow.errors import InvalidInput, NotFound
from relayflow.services import provider as provider_service
from relayflow.services import secret as secret_service
from relayflow.services.login import Viewer
from relayflow.web.api.schemas import clean_json
from relayflow.web.deps import RuntimeDep, SessionDep
from relayflow.web.pages.deps import AdminDep, FormDep, ViewerDep
from relayflow.web.pages.settings_common import ROLE_RULES, done, flash, sub_nav, text_field
from relayflow.web.pages.templating import render

router = APIRouter()
PATH = "/settings/providers"
_BODY_PROBLEM = "body must be an object whose strings are templates"

# The configuration keys each type reads from the form, whose fields are named
# `<type>_<key>` because both fieldsets live in one form (without JavaScript every field is
# visible and submitted). GIVEN keys are sent only when filled in (the parser then names a
# missing required one, or applies its default); an empty OPTIONAL key means none.
GIVEN = {"smtp": ("host", "from", "tls"), "http": ("url", "method", "auth_header")}
OPTIONAL = {"smtp": ("username", "password_secret", "ca_file", "events_secret"),
            "http": ("auth_header_secret", "message_id_path", "auth_scheme", "events_secret")}
NUMBERS = {"smtp": (("port", int), ("timeout", float)), "http": (("timeout", float),)}


def _number(text: str, kind: type[int] | type[float]) -> int | float | str:
    """A number when the text is one; otherwise the text, so the parser names the field."""
    try:
        return kind(text)
    except ValueError:
        return text


def config_from_form(form: FormData) -> tuple[dict[str, Any], list[str]]:
    """The configuration the form describes, plus problems only the form can have (JSON)."""
    kind = text_field(form, "type", max_length=20)
    data: dict[str, Any] = {"type": kind}
    problems: list[str] = []
    if kind not in GIVEN:
        return data, problems

    def field(name: str) -> str:
        return text_field(form, f"{kind}_{name}", max_length=2000)

    for name in GIVEN[kind]:
        if value := field(name):
            data[name] = value
    for name in OPTIONAL[kind]:
        data[name] = field(name) or None
    for name, number in NUMBERS[kind]:
        if value := field(name):
            data[name] = _number(value, number)
    if kind == "http":
        text = text_field(form, "http_body", max_length=64 * 1024)
        if text:
            try:
                data["body"] = clean_json(json.loads(text, parse_constant=_refuse_constant))
            except ValueError as exc:
                problems.append(f"body is not valid JSON: {exc}")
                data["body"] = text  # the parser refuses it too, so nothing is saved
    return data, problems


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _form_values(config: dict[str, Any]) -> dict[str, Any]:
    """What each field of a channel's form starts with: the stored values, else defaults."""
    kind = config.get("type", "outbox")
    values: dict[str, Any] = {
        "type": kind, "smtp_port": 587, "smtp_tls": "starttls", "smtp_timeout": 20.0,
        "http_method": "POST", "http_auth_header": "Authorization", "http_auth_scheme": "Bearer",
        "http_message_id_path": "body.id", "http_timeout": 10.0,
        "http_body": json.dumps({"to": "{{ to }}", "text": "{{ body }}"}, indent=2),
    }
    for key, value in config.items():
        if key == "type":
            continue
        if key == "body":
            value = json.dumps(value, indent=2, ensure_ascii=False)
        values[f"{kind}_{key}"] = "" if value is None else value
    return values


def _submitted_values(form: FormData, kind: str) -> dict[str, Any]:
    """The fields as sent, to fill the form again after a 422 (they hold names, no values)."""
    return {"type": kind, **{k: v for k, v in form.items()
                             if isinstance(v, str) and k.startswith(("smtp_", "http_"))}}


def _page(request: Request, session: Session, viewer: Viewer, *, status_code: int = 200,
          failed: dict[str, Any] | None = None, flash_: dict[str, str] | None = None
          ) -> Response:
    stored = provider_service.stored_all(session, workspace_id=viewer.workspace_id)
    secrets = sorted(secret_service.names(session, viewer.workspace_id))
    types = provider_service.channel_types()
    channels = []
    for channel, config in stored.items():
        shown = config or provider_service.show(session, workspace_id=viewer.workspace_id,
                                                channel=channel)
        values = _form_values(shown)
        problems: list[str] = []
        if failed and failed["channel"] == channel:
            values, problems = failed["values"], failed["problems"]
        channels.append({"channel": channel, "config": shown, "is_default": config is None,
                         "types": types[channel], "fields": values, "problems": problems})
    ctx = {"nav": sub_nav(viewer), "settings_section": "providers", "rule": ROLE_RULES["providers"],
           "channels": channels, "secret_names": secrets, "flash": flash_}
    return render(request, "settings/providers.html", ctx, status_code=status_code)


@router.get("/settings/providers", name="settings:providers")
def providers_page(request: Request, session: SessionDep, viewer: ViewerDep,
                   notice: str | None = None, subject: str | None = None) -> Response:
    return _page(request, session, viewer, flash_=flash(notice, subject))


@router.post("/settings/providers/{channel}", name="settings:providers_put")
def put_provider(channel: str, request: Request, session: SessionDep, runtime: RuntimeDep,
                 viewer: AdminDep, form: FormDep) -> Response:
    if channel not in provider_service.CHANNELS:
        raise NotFound(f"no channel {channel!r}; use {', '.join(provider_service.CHANNELS)}")
    kind = str(form.get("type") or "")
    problems: list[str] = []
    try:
        data, problems = config_from_form(form)
        provider_service.put(session, workspace_id=viewer.workspace_id, channel=channel,
                             data=data, now=runtime.clock(), actor=viewer.principal.actor,
                             network_allow=runtime.network_allow)
    except provider_service.InvalidProvider as exc:
        found = [p for p in exc.problems if not (problems and p == _BODY_PROBLEM)]
        failed = {"channel": channel, "values": _submitted_values(form, kind),
                  "problems": problems + found}
    except InvalidInput as exc:
        failed = {"channel": channel, "values": _submitted_values(form, kind),
                  "problems": [exc.detail]}
    else:
        return done(PATH, "provider_saved", channel)
    session.rollback()
    return _page(request, session, viewer, status_code=422, failed=failed)
