"""/api/v1 routes for the workspace's per-contact frequency caps."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from relayflow.services import frequency as frequency_service
from relayflow.web.api.responses import errors
from relayflow.web.deps import AdminDep, PrincipalDep, RuntimeDep, SessionDep

router = APIRouter(prefix="/settings/frequency-caps", tags=["settings"])

_DESCRIPTION = (
    "The most messages one contact may be sent per channel per UTC day, in this workspace. "
    "A run's message over the cap is not sent: its attempt is SUPPRESSED with "
    "`suppressed_by` `frequency_cap`, and the run goes on as for any suppression. A message "
    "retried after a transient failure or recovered after a crash counts once. Manual "
    "resends are counted but never refused. null (or a channel left out) means no cap."
)

Cap = Annotated[StrictInt | None, Field(ge=1, le=frequency_service.MAX_CAP)]


class FrequencyCaps(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Cap = Field(default=None, description="Emails per contact per UTC day.",
                       examples=[3])
    sms: Cap = Field(default=None, description="SMS per contact per UTC day.", examples=[2])


def _read(caps: dict[str, int]) -> FrequencyCaps:
    return FrequencyCaps.model_validate(caps)


@router.get("", name="frequency_caps:detail", summary="Get the frequency caps",
            description=_DESCRIPTION, response_model=FrequencyCaps, responses=errors(401))
def get_frequency_caps(session: SessionDep, principal: PrincipalDep) -> FrequencyCaps:
    return _read(frequency_service.show(session, workspace_id=principal.workspace_id))


@router.put(
    "", name="frequency_caps:put", summary="Replace the frequency caps (admin)",
    description=_DESCRIPTION + " Values are integers from 1 to "
                               f"{frequency_service.MAX_CAP}; anything else, or an unknown "
                               "channel, is answered 422. Returns the caps as stored.",
    response_model=FrequencyCaps, responses=errors(400, 401, 403, 413, 422),
)
def put_frequency_caps(
    principal: AdminDep, session: SessionDep, runtime: RuntimeDep,
    body: Annotated[FrequencyCaps, Body(openapi_examples={
        "daily": {"value": {"email": 3, "sms": 2}}})],
) -> FrequencyCaps:
    stored = frequency_service.put(session, workspace_id=principal.workspace_id,
                                   caps=body.model_dump(), now=runtime.clock(),
                                   actor=principal.actor)
    return _read(stored)
