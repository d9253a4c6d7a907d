from __future__ import annotations

from fastapi import APIRouter, Response, status

from relayflow.services import secret as secret_service
from relayflow.web.api.schemas import SecretList, SecretRead, SecretWrite
from relayflow.web.deps import PrincipalDep, RuntimeDep, SessionDep, WriterDep

router = APIRouter(prefix="/secrets", tags=["secrets"])


@router.get("", name="secrets:list", summary="List secret names", response_model=SecretList)
def list_secrets(session: SessionDep, principal: PrincipalDep) -> SecretList:
    infos = secret_service.list_info(session, workspace_id=principal.workspace_id)
    return SecretList(items=[SecretRead.from_info(i) for i in infos])


@router.put(
    "/{name}",
    name="secrets:put",
    summary="Set a secret (write-only)",
    status_code=status.HTTP_204_NO_CONTENT,
)
def put_secret(
    name: str, principal: WriterDep, body: SecretWrite, session: SessionDep, runtime: RuntimeDep
) -> Response:
    secret_service.put(
        session, workspace_id=principal.workspace_id, name=name, value=body.value,
        cipher=runtime.cipher, now=runtime.clock(), actor=principal.actor,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/{name}",
    name="secrets:delete",
    summary="Delete a secret",
    status_code=status.HTTP_204_NO_CONTENT,
)
def delete_secret(
    name: str, principal: WriterDep, session: SessionDep, runtime: RuntimeDep
) -> Response:
    secret_service.delete(
        session, workspace_id=principal.workspace_id, name=name, now=runtime.clock(),
        actor=principal.actor,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
