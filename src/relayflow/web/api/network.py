"""/api/v1 routes for the workspace's network settings (the outbound allow-list)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field

from relayflow.services import network as network_service
from relayflow.web.api.responses import errors
from relayflow.web.api.schemas import Text
from relayflow.web.deps import AdminDep, PrincipalDep, RuntimeDep, SessionDep

router = APIRouter(prefix="/settings/network", tags=["settings"])

_DESCRIPTION = (
    "INTEGRATION requests and HTTP providers refuse loopback, private (RFC 1918, "
    "100.64.0.0/10), link-local (169.254.0.0/16, cloud metadata), unique-local, multicast "
    "and reserved targets, in every spelling and after DNS, on every redirect. `allow` "
    "lists CIDRs (an address inside one is allowed) and host names (that name and what it "
    "resolves to are allowed) for this workspace, on top of the instance's "
    "RELAYFLOW_NETWORK_ALLOW."
)


class NetworkSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allow: list[Text] = Field(
        max_length=network_service.MAX_ENTRIES,
        description="CIDRs (`10.0.0.0/8`, `::1/128`; a bare address is one host) and host "
                    "names (`crm.internal`). No URLs, no ports.",
        examples=[["127.0.0.1/32", "crm.internal"]],
    )


@router.get("", name="network:detail", summary="Get the network allow-list",
            description=_DESCRIPTION, response_model=NetworkSettings, responses=errors(401))
def get_network(session: SessionDep, principal: PrincipalDep) -> NetworkSettings:
    return NetworkSettings(allow=network_service.show(session,
                                                      workspace_id=principal.workspace_id))


@router.put(
    "", name="network:put", summary="Replace the network allow-list (admin)",
    description=_DESCRIPTION + " Invalid entries are answered 422, each named in "
                               "`details.problems`. Returns the list as stored (normalized).",
    response_model=NetworkSettings, responses=errors(400, 401, 403, 413, 422),
)
def put_network(
    principal: AdminDep, session: SessionDep, runtime: RuntimeDep,
    body: Annotated[NetworkSettings, Body(openapi_examples={
        "internal": {"value": {"allow": ["127.0.0.1/32", "crm.internal"]}}})],
) -> NetworkSettings:
    stored = network_service.put(session, workspace_id=principal.workspace_id,
                                 allow=body.allow, now=runtime.clock(), actor=principal.actor)
    return NetworkSettings(allow=stored)
