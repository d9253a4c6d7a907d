from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from relayflow.services import secret as secret_service
from relayflow.web.api.responses import errors
from relayflow.web.api.schemas import SecretList, SecretRead, SecretWrite, Text
from relayflow.web.deps import PrincipalDep, RuntimeDep, SessionDep, WriterDep

router = APIRouter(prefix="/secrets", tags=["secrets"])

Name = Annotated[Text, Path(description="Letters, digits and '_', starting with a letter; "
                                        "templates use it as {{ secrets.NAME }}.")]


@router.get("", name="secrets:list", summary="List secret names", response_model=SecretList,
            responses=errors(401))
def list_secrets(session: SessionDep, principal: PrincipalDep) -> SecretList:
    infos = secret_service.list_info(session, workspace_id=principal.workspace_id)
    return SecretList(items=[SecretRead.from_info(i) for i in infos])


@router.put(
    "/{name}",
    name="secrets:put",
    summary="Set a secret (write-only)",
    description="Creates or replaces the value, encrypted at rest. No endpoint returns it.",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(400, 401, 403, 413, 422),
)
def put_secret(
    name: Name, principal: WriterDep, body: SecretWrite, session: SessionDep,
    runtime: RuntimeDep,
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
    response_class=Response,
    responses=errors(401, 403, 404, 422),
)
def delete_secret(
    name: Name, principal: WriterDep, session: SessionDep, runtime: RuntimeDep
) -> Response:
    secret_service.delete(
        session, workspace_id=principal.workspace_id, name=name, now=runtime.clock(),
        actor=principal.actor,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
