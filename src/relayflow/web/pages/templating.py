"""The Jinja2 environment for pages: filters that format, never decide.

Times are rendered as `<time datetime=…>` in UTC; static/app.js rewrites them into the
viewer's timezone and keeps UTC in the title, so the page works without JavaScript too.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from starlette.responses import HTMLResponse

WEB = Path(__file__).resolve().parent.parent
STATIC = WEB / "static"
templates = Jinja2Templates(directory=str(WEB / "templates"))
env = templates.env
env.autoescape = True
env.trim_blocks = True
env.lstrip_blocks = True

# The status words of DESIGN §3 and §5, as people read them.
STATUS_LABELS = {
    "PENDING": "Pending", "RUNNING": "Running", "WAITING": "Waiting",
    "COMPLETED": "Completed", "FAILED": "Failed", "CANCELED": "Canceled",
    "QUEUED": "Queued", "SENT": "Sent", "DELIVERED": "Delivered", "BOUNCED": "Bounced",
    "SUPPRESSED": "Suppressed", "ACTIVE": "Active", "INACTIVE": "Inactive", "DRAFT": "Draft",
}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def time_tag(value: datetime | None, style: str = "datetime") -> Markup:
    """`style` is `datetime`, `date`, `time` or `relative` (app.js formats each)."""
    if value is None:
        return Markup('<span class="muted">—</span>')
    at = _utc(value)
    iso = at.isoformat().replace("+00:00", "Z")
    shown = at.strftime("%Y-%m-%d %H:%M:%S UTC")
    # Safe markup: iso and shown are formatted dates, style escaped.
    return Markup(  # nosec B704
        f'<time datetime="{iso}" data-local="{escape(style)}" title="{shown}">{shown}</time>'
    )


def duration(ms: int | float | None) -> str:
    if ms is None:
        return "—"
    ms = int(ms)
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def between(start: datetime | None, end: datetime | None) -> int | None:
    """Milliseconds from start to end, or None when either is missing."""
    if start is None or end is None:
        return None
    return int((_utc(end) - _utc(start)).total_seconds() * 1000)


def short_id(value: uuid.UUID | str | None) -> str:
    """The last 8 hex digits: a UUIDv7 starts with its timestamp, so the tail is what tells
    runs created in the same millisecond apart."""
    if value is None:
        return ""
    return str(value).replace("-", "")[-8:]


def status_label(status: str | None) -> str:
    return STATUS_LABELS.get(status or "", (status or "").title())


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


@cache
def _static_version(name: str) -> str:
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:10]


def static_url(name: str) -> str:
    """`/static/<name>?v=<content hash>`: browsers may cache it for good."""
    return f"/static/{name}?v={_static_version(name)}"


env.filters.update(time=time_tag, duration=duration, short_id=short_id,
                   status_label=status_label, pretty_json=pretty_json)
env.globals.update(static_url=static_url, between=between)


# A page read from a read replica further behind than this says so.
REPLICA_NOTICE_SECONDS = 5.0


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, *,
    status_code: int = 200, headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render a page; `viewer` (set by the page dependencies) is always in the context, and
    `replica_behind` (milliseconds) when the page was read from a lagging read replica."""
    lag = getattr(request.state, "replica_lag", None)
    behind = lag * 1000 if lag is not None and lag > REPLICA_NOTICE_SECONDS else None
    ctx = {"viewer": getattr(request.state, "viewer", None), "replica_behind": behind,
           **(context or {})}
    response = templates.TemplateResponse(request, name, ctx, status_code=status_code,
                                          headers=headers)
    response.headers.setdefault("Cache-Control", "no-store")
    return response
