"""/api/v1 routes for delivery ops: attempts, filtered and in full."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from relayflow.services import delivery_ops
from relayflow.services import resend as resend_service
from relayflow.web.api.delivery_schemas import DeliveryDetail, DeliveryList
from relayflow.web.api.responses import errors
from relayflow.web.api.schemas import Text
from relayflow.web.deps import (
    HistorySessionDep,
    PrincipalDep,
    RuntimeDep,
    SessionDep,
    SettingsDep,
    WriterDep,
    wake_worker_after_commit,
)

router = APIRouter(prefix="/deliveries", tags=["deliveries"])

_LIST_HELP = """Newest first, in pages of `limit` attempts; `next_cursor` continues with older
ones, and no attempt is skipped or repeated while new ones arrive.

`counts` holds attempts per status under every filter except `status`. A workflow key or an
address that matches nothing gives an empty page, not an error."""


@router.get(
    "", name="deliveries:list", summary="List delivery attempts, newest first, with counts",
    description=_LIST_HELP, response_model=DeliveryList, responses=errors(401, 422),
)
def list_deliveries(
    session: HistorySessionDep,
    principal: PrincipalDep,
    runtime: RuntimeDep,
    settings: SettingsDep,
    status: Annotated[
        Text | None,
        Query(description="A delivery status, or several separated by commas: "
                          f"{', '.join(delivery_ops.STATUSES)}."),
    ] = None,
    channel: Annotated[Text | None, Query(description="`email` or `sms`.")] = None,
    workflow: Annotated[Text | None, Query(description="A workflow key.")] = None,
    contact: Annotated[
        Text | None,
        Query(description="A contact's email or phone number (any usual spelling), or id."),
    ] = None,
    range_: Annotated[
        Literal["24h", "7d", "30d"] | None,
        Query(alias="range", description="Attempts created in the last 24 hours, 7 or 30 "
                                         "days. Not together with from/to."),
    ] = None,
    created_from: Annotated[
        datetime | None,
        Query(alias="from", description="ISO 8601; attempts created at or after it. "
                                        "Without a UTC offset the time is UTC."),
    ] = None,
    created_to: Annotated[
        datetime | None,
        Query(alias="to", description="ISO 8601; attempts created before it. "
                                      "Without a UTC offset the time is UTC."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=delivery_ops.MAX_PAGE)] = 50,
    fingerprint: Annotated[
        Text | None,
        Query(description="A cause of failure, as GET /api/v1/failures gives it: its FAILED "
                          "or BOUNCED attempts."),
    ] = None,
    cursor: Annotated[Text | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> DeliveryList:
    query = delivery_ops.DeliveryQuery(status=status, channel=channel, workflow=workflow,
                                       contact=contact, range=range_, created_from=created_from,
                                       created_to=created_to, fingerprint=fingerprint)
    page = delivery_ops.search(
        session, workspace_id=principal.workspace_id, query=query, limit=limit, cursor=cursor,
        now=runtime.clock(), phone_region=settings.default_phone_region,
    )
    return DeliveryList.from_page(page)


@router.get(
    "/{delivery_id}", name="deliveries:detail",
    summary="Get a delivery attempt with its chain of retries and resends",
    response_model=DeliveryDetail, responses=errors(401, 404, 422),
)
def get_delivery(delivery_id: str, session: SessionDep, principal: PrincipalDep
                 ) -> DeliveryDetail:
    # A plain string, so a malformed id is answered 404 like any unknown one.
    detail = delivery_ops.detail(session, workspace_id=principal.workspace_id,
                                 attempt_id=delivery_id)
    return DeliveryDetail.from_detail(detail)


class ResendBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"reason": "the customer deleted the first one"}]})

    reason: Text = Field(min_length=1, max_length=2000,
                         description="Why the message is sent again (kept on the attempt).")
    override: bool = Field(default=False, description="Send even though the contact is "
                           "unsubscribed or undeliverable on this channel (recorded).")


class ResendQueued(BaseModel):
    id: uuid.UUID
    status: str
    resend_of: uuid.UUID


@router.post(
    "/{delivery_id}/resend", name="deliveries:resend", status_code=status.HTTP_202_ACCEPTED,
    summary="Send a message again (a new attempt with no run)",
    description="Queues a new attempt with the same rendered content, `resend_of` set and "
    "your reason; a worker sends it once. A suppressed contact needs `override: true` (409 "
    "otherwise). Operators and admins only.",
    response_model=ResendQueued, responses=errors(400, 401, 403, 404, 409, 413, 422),
)
def resend_delivery(delivery_id: str, body: ResendBody, session: SessionDep,
                    runtime: RuntimeDep, principal: WriterDep) -> ResendQueued:
    copy = resend_service.resend(session, workspace_id=principal.workspace_id,
                                 attempt_id=delivery_id, reason=body.reason,
                                 override=body.override, actor=principal.actor,
                                 now=runtime.clock())
    wake_worker_after_commit(session)
    assert copy.resend_of is not None
    return ResendQueued(id=copy.id, status=copy.status, resend_of=copy.resend_of)
