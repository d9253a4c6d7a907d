"""/api/v1 routes for how long the workspace keeps its history (`relayflow prune`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from relayflow.services import retention as retention_service
from relayflow.web.api.responses import errors
from relayflow.web.deps import AdminDep, PrincipalDep, RuntimeDep, SessionDep

router = APIRouter(prefix="/settings/retention", tags=["settings"])

_DESCRIPTION = (
    "How long `relayflow prune` keeps this workspace's history: finished runs with their "
    "steps, and delivery attempts, `days` after they finished (null: the age prune is run "
    "with, 90 days unless told otherwise); failed runs and failed or bounced attempts "
    "`failed_days` (null: as long as the rest). Runs still pending or running and attempts "
    "still queued are never deleted."
)

Days = Annotated[StrictInt | None, Field(ge=1, le=retention_service.MAX_RETENTION_DAYS)]


class Retention(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: Days = Field(default=None, description="Days finished history is kept.",
                       examples=[90])
    failed_days: Days = Field(default=None, description="Days failures are kept.",
                              examples=[365])


@router.get("", name="retention:detail", summary="Get the workspace's retention",
            description=_DESCRIPTION, response_model=Retention, responses=errors(401))
def get_retention(session: SessionDep, principal: PrincipalDep) -> Retention:
    shown = retention_service.show(session, workspace_id=principal.workspace_id)
    return Retention(days=shown.days, failed_days=shown.failed_days)


@router.put(
    "", name="retention:put", summary="Set the workspace's retention (admin)",
    description=_DESCRIPTION + " Days are whole numbers from 1 to "
                               f"{retention_service.MAX_RETENTION_DAYS}; anything else is "
                               "answered 422. Returns the retention as stored.",
    response_model=Retention, responses=errors(400, 401, 403, 413, 422),
)
def put_retention(
    principal: AdminDep, session: SessionDep, runtime: RuntimeDep,
    body: Annotated[Retention, Body(openapi_examples={
        "failures longer": {"value": {"days": 90, "failed_days": 365}}})],
) -> Retention:
    stored = retention_service.put(session, workspace_id=principal.workspace_id,
                                   days=body.days, failed_days=body.failed_days,
                                   now=runtime.clock(), actor=principal.actor)
    return Retention(days=stored.days, failed_days=stored.failed_days)
