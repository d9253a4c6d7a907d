"""/api/v1 routes for API keys (admin only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from relayflow.services import auth as auth_service
from relayflow.web.api.responses import errors
from relayflow.web.api.schemas import Text
from relayflow.web.api.workspace_schemas import KeyCreate, KeyCreated, KeyList, KeyRead
from relayflow.web.deps import AdminDep, RuntimeDep, SessionDep

router = APIRouter(prefix="/keys", tags=["keys"])


@router.post(
    "",
    name="keys:create",
    summary="Create an API key",
    description="The answer carries the full key once; only its hash is stored.",
    response_model=KeyCreated,
    status_code=status.HTTP_201_CREATED,
    responses=errors(400, 401, 403, 413, 422),
)
def create_key(
    body: KeyCreate, principal: AdminDep, session: SessionDep, runtime: RuntimeDep
) -> KeyCreated:
    key, full = auth_service.create_api_key(
        session, workspace_id=principal.workspace_id, role=body.role, name=body.name,
        created_by=principal.actor, now=runtime.clock(),
    )
    return KeyCreated(**KeyRead.from_key(key).model_dump(), api_key=full)


@router.get(
    "",
    name="keys:list",
    summary="List API keys, revoked ones included",
    response_model=KeyList,
    responses=errors(401, 403),
)
def list_keys(principal: AdminDep, session: SessionDep) -> KeyList:
    keys = auth_service.list_api_keys(session, workspace_id=principal.workspace_id)
    return KeyList(items=[KeyRead.from_key(k) for k in keys])


@router.delete(
    "/{prefix}",
    name="keys:revoke",
    summary="Revoke an API key",
    description="Requests with the key are refused (401) from now on. The key stays listed, "
                "with its revoked_at.",
    response_model=KeyRead,
    responses=errors(401, 403, 404, 409, 422),
)
def revoke_key(
    prefix: Annotated[Text, Path(description="The key's prefix, e.g. rf_1a2b3c4d.")],
    principal: AdminDep, session: SessionDep, runtime: RuntimeDep,
) -> KeyRead:
    key = auth_service.revoke_api_key(session, workspace_id=principal.workspace_id,
                                      prefix=prefix, actor=principal.actor, now=runtime.clock())
    return KeyRead.from_key(key)
