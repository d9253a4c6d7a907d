"""/api/v1 routes for members: people who log in to the workspace."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from relayflow.services import auth as auth_service
from relayflow.services import member as member_service
from relayflow.web.api.responses import errors
from relayflow.web.api.schemas import Text
from relayflow.web.api.workspace_schemas import (
    MemberCreate,
    MemberList,
    MemberPasswordReset,
    MemberRead,
    MemberRemoved,
    MemberUpdate,
    MemberUpdated,
)
from relayflow.web.deps import AdminDep, PrincipalDep, RuntimeDep, SessionDep

router = APIRouter(prefix="/members", tags=["members"])
# `:path`: an address may hold a "/" (percent-encoded or not, it reaches the handler whole).
EmailPath = Annotated[Text, Path(description="The member's email address, matched as stored: "
                                             "trimmed and lower-cased.")]


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


@router.patch(
    "/{email:path}",
    name="members:update",
    summary="Change a member's role (admin only)",
    description="Applies from the member's next request. Demoting the last admin is refused "
                "(409); a demotion revokes the keys the member created with a role above the "
                "new one.",
    response_model=MemberUpdated,
    responses=errors(400, 401, 403, 404, 409, 413, 422),
)
def update_member(
    email: EmailPath, body: MemberUpdate, principal: AdminDep, session: SessionDep,
    runtime: RuntimeDep,
) -> MemberUpdated:
    change = member_service.change_role(
        session, workspace_id=principal.workspace_id, email=email, role=body.role,
        actor=principal.actor, now=runtime.clock(),
    )
    return MemberUpdated(**MemberRead.from_member(change.member).model_dump(),
                         revoked_keys=list(change.revoked_keys))


@router.delete(
    "/{email:path}",
    name="members:remove",
    summary="Remove a member (admin only)",
    description="Their browser sessions lose this workspace at once and the API keys they "
                "created here are revoked. Removing the last admin is refused (409).",
    response_model=MemberRemoved,
    responses=errors(401, 403, 404, 409, 422),
)
def remove_member(
    email: EmailPath, principal: AdminDep, session: SessionDep, runtime: RuntimeDep
) -> MemberRemoved:
    change = member_service.remove(session, workspace_id=principal.workspace_id, email=email,
                                   actor=principal.actor, now=runtime.clock())
    return MemberRemoved(**MemberRead.from_member(change.member).model_dump(),
                         sessions_ended=change.sessions_ended,
                         revoked_keys=list(change.revoked_keys))


@router.post(
    "/{email:path}/password",
    name="members:reset_password",
    summary="Reset a member's password (admin only)",
    description="Sets a new random password and answers it this once; the old one stops "
                "working and their browser sessions lose this workspace. Give it to them "
                "privately.",
    response_model=MemberPasswordReset,
    responses=errors(401, 403, 404, 422),
)
def reset_password(
    email: EmailPath, principal: AdminDep, session: SessionDep, runtime: RuntimeDep,
    response: Response,
) -> MemberPasswordReset:
    change, password = member_service.reset_password(
        session, workspace_id=principal.workspace_id, email=email, actor=principal.actor,
        now=runtime.clock())
    response.headers["Cache-Control"] = "no-store"
    return MemberPasswordReset(**MemberRead.from_member(change.member).model_dump(),
                               password=password, sessions_ended=change.sessions_ended)
