"""/api/v1 routes for the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from relayflow.services import audit as audit_service
from relayflow.services import paging
from relayflow.web.api.responses import errors
from relayflow.web.api.schemas import Text
from relayflow.web.api.workspace_schemas import AuditList, AuditRead
from relayflow.web.deps import PrincipalDep, SessionDep

router = APIRouter(prefix="/audit", tags=["audit"])

_ACTIONS = ", ".join(f"`{a}`" for a in sorted(audit_service.ACTIONS))


@router.get(
    "",
    name="audit:list",
    summary="List audit events, newest first",
    response_model=AuditList,
    responses=errors(401, 422),
)
def list_audit(
    session: SessionDep,
    principal: PrincipalDep,
    action: Annotated[
        Text | None,
        Query(description=f"An action, or several separated by commas: {_ACTIONS}."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=paging.MAX_PAGE)] = 50,
    cursor: Annotated[Text | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> AuditList:
    page = audit_service.list_page(session, workspace_id=principal.workspace_id,
                                   actions=audit_service.parse_actions(action), limit=limit,
                                   cursor=cursor)
    return AuditList(items=[AuditRead.from_event(e) for e in page.events],
                     next_cursor=page.next_cursor)
