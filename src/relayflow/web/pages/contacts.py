"""Pages: contacts — a searchable list, and one contact with everything that happened to it
(runs, delivery attempts and refused or duplicate triggers on one timeline), and why a
workflow did or did not reach it."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import HTMLResponse, RedirectResponse

from relayflow.errors import InvalidInput, NotFound
from relayflow.services import contact as contact_service
from relayflow.services import explain as explain_service
from relayflow.services import paging
from relayflow.services import workflow as workflow_service
from relayflow.web.deps import RuntimeDep, SessionDep
from relayflow.web.pages.deps import AdminDep, FormDep, ViewerDep
from relayflow.web.pages.templating import pretty_json, render

router = APIRouter()

DEFAULT_LIMIT = 50
CHANNELS = (("email", "Email", "email"), ("sms", "SMS", "phone"))
KEY_ATTRIBUTES = 3  # attributes shown in the list; the rest are on the contact's page
# Shown first when a contact has them: what people recognise someone by.
_KEY_NAMES = ("name", "first_name", "last_name", "company", "plan")


def _href(q: str, limit: str, **cursor: str) -> str:
    pairs = [(k, v) for k, v in (("q", q), ("limit", limit), *cursor.items()) if v]
    return "/contacts" + (f"?{urlencode(pairs)}" if pairs else "")


def _limit(text: str) -> int:
    if not text:
        return DEFAULT_LIMIT
    if not text.isdigit():
        raise InvalidInput(f"limit must be a whole number from 1 to {paging.MAX_PAGE}")
    return int(text)


def attribute_text(value: Any) -> str:
    """An attribute value as plain text: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else pretty_json(value)


def key_attributes(attributes: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Every attribute as (name, text), the recognisable ones first, then by name."""
    rank = {name: i for i, name in enumerate(_KEY_NAMES)}
    names = sorted(attributes or {}, key=lambda n: (rank.get(n, len(rank)), n))
    return [(name, attribute_text((attributes or {})[name])) for name in names]


@router.get("/contacts", name="contacts:list")
def list_page(request: Request, viewer: ViewerDep, session: SessionDep) -> HTMLResponse:
    params = request.query_params
    q, limit = (params.get("q") or "").strip(), (params.get("limit") or "").strip()
    cursor, after = params.get("cursor") or "", params.get("after") or ""
    ctx: dict[str, Any] = {"q": q, "limit": limit, "channels": CHANNELS,
                           "shown_attributes": KEY_ATTRIBUTES, "key_attributes": key_attributes}
    try:
        page = contact_service.browse(session, workspace_id=viewer.workspace_id, text=q,
                                      limit=_limit(limit), cursor=cursor or None,
                                      after=after or None)
    except InvalidInput as exc:
        ctx["error"] = exc.detail
        return render(request, "contacts/list.html", ctx, status_code=422)
    ctx.update(
        page=page,
        older_href=_href(q, limit, cursor=page.older_cursor) if page.older_cursor else None,
        newer_href=_href(q, limit, after=page.newer_cursor) if page.newer_cursor else None,
        first_href=_href(q, limit) if cursor or after else None,
    )
    return render(request, "contacts/list.html", ctx)


EXPLAIN_RANGES = (("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days"))


@router.get("/contacts/{contact_id}", name="contacts:detail")
def detail_page(contact_id: str, request: Request, viewer: ViewerDep, session: SessionDep,
                runtime: RuntimeDep, why: str = "",
                why_range: Annotated[str, Query(alias="range")] = "7d") -> HTMLResponse:
    """The contact, its timeline, and the "Why not?" panel: with `why` (a workflow's key),
    that workflow's verdict for this contact over `range`, and its evidence."""
    timeline = contact_service.timeline(session, workspace_id=viewer.workspace_id,
                                        contact_id=contact_id)
    ctx: dict[str, Any] = {
        "t": timeline, "c": timeline.contact, "channels": CHANNELS,
        "suppressions": contact_service.suppressions(session, timeline.contact),
        "notice": request.query_params.get("notice", ""),
        "key_attributes": key_attributes, "why": why, "why_range": why_range,
        "why_ranges": EXPLAIN_RANGES, "says": explain_service.says,
        "workflows": workflow_service.list_all(session, workspace_id=viewer.workspace_id),
    }
    if not why:
        return render(request, "contacts/detail.html", ctx)
    try:
        found = explain_service.explain(
            session, workspace_id=viewer.workspace_id, contact_id=contact_id,
            workflow_key=why, range_=why_range, now=runtime.clock())
    except (InvalidInput, NotFound) as exc:
        ctx["why_error"] = exc.detail
        return render(request, "contacts/detail.html", ctx, status_code=422)
    ctx.update(explained=found, verdict=explain_service.verdict_says(found.verdict, why))
    return render(request, "contacts/detail.html", ctx)


@router.post("/contacts/{contact_id}/suppression/lift", name="contacts:lift_suppression")
def lift_suppression(contact_id: str, viewer: AdminDep, form: FormDep, session: SessionDep,
                     runtime: RuntimeDep) -> RedirectResponse:
    contact = contact_service.lift_suppression(
        session, workspace_id=viewer.workspace_id, contact_id=contact_id,
        channel=str(form.get("channel") or ""), reason=str(form.get("reason") or ""),
        actor=viewer.principal.actor, now=runtime.clock())
    return RedirectResponse(f"/contacts/{contact.id}?notice=lifted", status_code=303)
