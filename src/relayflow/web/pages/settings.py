"""Pages: settings — an overview, the audit log, and (in settings_*.py) providers, secrets,
API keys and members. Every change goes through the service functions the JSON API calls,
under the same role, so validation and audit events are identical."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response

from relayflow.services import audit as audit_service
from relayflow.services import auth as auth_service
from relayflow.services import provider as provider_service
from relayflow.services import secret as secret_service
from relayflow.storage.models import AuditEvent, Member
from relayflow.web.deps import SessionDep
from relayflow.web.pages import (
    settings_access,
    settings_limits,
    settings_network,
    settings_providers,
    settings_retention,
    settings_secrets,
)
from relayflow.web.pages.deps import ViewerDep
from relayflow.web.pages.settings_common import ROLE_RULES, sub_nav
from relayflow.web.pages.templating import render

router = APIRouter()
for _module in (settings_providers, settings_secrets, settings_limits, settings_retention,
                settings_network, settings_access):
    router.include_router(_module.router)

PAGE_SIZE = 50
ACTIONS = dict(sorted(audit_service.ACTIONS.items()))


def target_href(event: AuditEvent) -> str | None:
    """Where an event's target can be looked at, when it has a page."""
    pages = {"run": "/runs/{}", "workflow": "/workflows/{}", "delivery": "/delivery-ops/{}",
             "contact": "/contacts/{}", "secret": "/settings/secrets",
             "provider": "/settings/providers", "api_key": "/settings/keys",
             "member": "/settings/members", "network": "/settings/network",
             "frequency": "/settings/frequency-caps"}
    pattern = pages.get(event.target_type)
    return pattern.format(event.target_id) if pattern else None


def _emails(members: list[Member]) -> dict[str, str]:
    """Member events name the member by id; people know them by email."""
    return {str(m.id): m.email for m in members}


@router.get("/settings", name="settings:overview")
def overview(request: Request, session: SessionDep, viewer: ViewerDep) -> Response:
    workspace_id = viewer.workspace_id
    keys = (auth_service.list_api_keys(session, workspace_id=workspace_id)
            if viewer.is_admin else None)
    recent = audit_service.list_page(session, workspace_id=workspace_id, limit=5)
    members = auth_service.list_members(session, workspace_id=workspace_id)
    ctx = {
        "nav": sub_nav(viewer), "settings_section": "overview", "rules": ROLE_RULES,
        "providers": provider_service.stored_all(session, workspace_id=workspace_id),
        "secret_count": len(secret_service.names(session, workspace_id)),
        "member_count": len(members), "member_emails": _emails(members),
        "active_keys": (None if keys is None
                        else sum(1 for k in keys if k.revoked_at is None)),
        "recent": recent.events, "target_href": target_href,
    }
    return render(request, "settings/overview.html", ctx)


@router.get("/settings/audit", name="settings:audit")
def audit_page(
    request: Request, session: SessionDep, viewer: ViewerDep,
    action: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> Response:
    actions = audit_service.parse_actions(action)
    page = audit_service.list_page(session, workspace_id=viewer.workspace_id, actions=actions,
                                   limit=PAGE_SIZE, cursor=cursor or None)
    base = {"action": action} if action else {}
    older = (f"/settings/audit?{urlencode({**base, 'cursor': page.next_cursor})}"
             if page.next_cursor else None)
    newest = f"/settings/audit?{urlencode(base)}" if cursor else None
    ctx = {"nav": sub_nav(viewer), "settings_section": "audit", "rule": ROLE_RULES["audit"],
           "events": page.events, "actions": ACTIONS, "action": action or "",
           "older_href": older, "newest_href": newest.rstrip("?") if newest else None,
           "paged": bool(cursor), "target_href": target_href,
           "member_emails": _emails(auth_service.list_members(
               session, workspace_id=viewer.workspace_id))}
    return render(request, "settings/audit.html", ctx)
