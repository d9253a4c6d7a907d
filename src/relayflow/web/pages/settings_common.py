"""What the settings pages share: reading form fields, notices after a redirect, roles."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData

from relayflow.errors import InvalidInput
from relayflow.services.login import Viewer
from relayflow.web.api.schemas import clean_text

# Shown in a notice only when it looks like a secret name, a channel, a key prefix or an
# email address: a crafted link cannot make the page say anything else.
_SUBJECT = re.compile(r"^[A-Za-z0-9_.@+-]{1,320}$")

NOTICES = {
    "provider_saved": "Saved the {subject} provider.",
    "secret_saved": "Saved secret {subject}. Its value is stored encrypted and is never shown.",
    "secret_deleted": "Deleted secret {subject}.",
    "key_revoked": "Revoked API key {subject}: requests with it are refused from now on.",
    "member_added": "Added {subject}. They can sign in with the password you set.",
    "member_role": "Changed the role of {subject}. It applies from their next request.",
    "member_role_keys": "Changed the role of {subject}. It applies from their next request; "
                        "the API keys they created with a higher role were revoked.",
    "member_removed": "Removed {subject}: their sessions in this workspace have ended.",
    "member_removed_keys": "Removed {subject}: their sessions in this workspace have ended "
                           "and the API keys they created were revoked.",
    "retention_saved": "Saved the retention. The next prune applies it.",
    "frequency_saved": "Saved the frequency caps ({subject} capped). They apply from the "
                       "next message.",
    "network_saved": "Saved the allow-list ({subject} entries). It applies from the next request.",
}

# Who may do what, as the JSON API decides it (web/api/*.py); the pages state it too.
ROLE_RULES = {
    "providers": "Everyone can see the providers; only admins can change them.",
    "secrets": "Everyone can see secret names; admins and operators can set or delete secrets.",
    "keys": "Only admins can see, create and revoke API keys.",
    "members": "Everyone can see the members; only admins can add, change or remove "
               "them.",
    "audit": "Everyone in the workspace can read the audit log.",
    "frequency": "Everyone can see the caps; only admins can change them.",
    "network": "Everyone can see the allow-list; only admins can change it.",
    "retention": "Everyone can see the retention; only admins can change it.",
}


def flash(notice: str | None, subject: str | None) -> dict[str, str] | None:
    text = NOTICES.get(notice or "")
    if text is None:
        return None
    shown = subject if subject and _SUBJECT.match(subject) else "it"
    return {"text": text.format(subject=shown), "kind": "ok"}


def done(path: str, notice: str, subject: str) -> RedirectResponse:
    """PRG: 303 back to the page with a notice code (never a submitted value)."""
    return RedirectResponse(f"{path}?{urlencode({'notice': notice, 'subject': subject})}",
                            status_code=303)


def text_field(form: FormData, name: str, *, max_length: int, strip: bool = True) -> str:
    """A form field as text both databases can store; 422 (InvalidInput) otherwise."""
    raw = form.get(name)
    value = raw if isinstance(raw, str) else ""
    if strip:
        value = value.strip()
    if len(value) > max_length:
        raise InvalidInput(f"{name} is at most {max_length} characters")
    try:
        return clean_text(value)
    except ValueError as exc:
        raise InvalidInput(f"{name} {exc}") from exc


def sub_nav(viewer: Viewer) -> list[dict[str, str]]:
    items = [{"key": "overview", "label": "Overview", "href": "/settings"},
             {"key": "providers", "label": "Providers", "href": "/settings/providers"},
             {"key": "secrets", "label": "Secrets", "href": "/settings/secrets"}]
    if viewer.is_admin:
        items.append({"key": "keys", "label": "API keys", "href": "/settings/keys"})
    items += [{"key": "frequency", "label": "Frequency caps", "href": "/settings/frequency-caps"},
              {"key": "retention", "label": "Retention", "href": "/settings/retention"},
              {"key": "network", "label": "Network", "href": "/settings/network"},
              {"key": "members", "label": "Members", "href": "/settings/members"},
              {"key": "audit", "label": "Audit log", "href": "/settings/audit"}]
    return items
