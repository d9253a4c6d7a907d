"""/api/v1 routes for members: people who log in to the workspace."""

from __future__ import annotations

from fastapi import APIRouter, status

from relayflow.services import auth as auth_service
from relayflow.web.api.responses import errors
from relayflow.web.api.workspace_schemas import MemberCreate, MemberList, MemberRead
from relayflow.web.deps import AdminDep, PrincipalDep, RuntimeDep, SessionDep

router = APIRouter(prefix="/members", tags=["members"])


@router.get("", name="members:list", summary="List members", response_model=MemberList,
            responses=errors(401))
def list_members(principal: PrincipalDep, session: SessionDep) -> MemberList:
    members = auth_service.list_members(session, workspace_id=principal.workspace_id)
    return MemberList(items=[MemberRead.from_member(m) for m in members])


@router.post(
    "",
    name="members:add",
    summary="Add a member (admin only)",
    response_model=MemberRead,
    status_code=status.HTTP_201_CREATED,
    responses=errors(400, 401, 403, 409, 413, 422),
)
def add_member(
    body: MemberCreate, principal: AdminDep, session: SessionDep, runtime: RuntimeDep
) -> MemberRead:
    member = auth_service.add_member(
        session, workspace_id=principal.workspace_id, email=body.email, role=body.role,
        password=body.password, now=runtime.clock(), actor=principal.actor,
    )
    return MemberRead.from_member(member)
