"""/api/v1 routes for contacts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, Field

from relayflow.services import contact as contact_service
from relayflow.services import erase as erase_service
from relayflow.services import explain as explain_service
from relayflow.services import paging
from relayflow.web.api.responses import errors
from relayflow.web.api.schemas import (
    ContactDetail,
    ContactList,
    ContactRead,
    ContactRef,
    ContactUpsert,
    RunRead,
    Text,
)
from relayflow.web.deps import (
    AdminDep,
    PrincipalDep,
    RuntimeDep,
    SessionDep,
    SettingsDep,
    WriterDep,
)

router = APIRouter(prefix="/contacts", tags=["contacts"])


@router.post(
    "",
    name="contacts:upsert",
    summary="Create or update a contact",
    description="Looks the contact up by every identifier given (email, phone, external_id). "
                "One contact matches: its identifiers are set to the ones given and the "
                "attributes merged in (200). None matches: a new contact (201). The "
                "identifiers match two different contacts: 409, nothing changes.",
    response_model=ContactRead,
    status_code=status.HTTP_200_OK,
    responses={201: {"model": ContactRead, "description": "Created"},
               **errors(400, 401, 403, 409, 413, 422)},
)
def upsert_contact(
    body: ContactUpsert, principal: WriterDep, response: Response, session: SessionDep,
    runtime: RuntimeDep, settings: SettingsDep,
) -> ContactRead:
    upserted = contact_service.upsert(
        session, workspace_id=principal.workspace_id, now=runtime.clock(), email=body.email,
        phone=body.phone, external_id=body.external_id, attributes=body.attributes,
        phone_region=settings.default_phone_region, actor=principal.actor,
    )
    if upserted.created:
        response.status_code = status.HTTP_201_CREATED
    return ContactRead.from_contact(upserted.contact)


@router.get(
    "",
    name="contacts:list",
    summary="List or search contacts, newest first",
    response_model=ContactList,
    responses=errors(401, 422),
)
def list_contacts(
    session: SessionDep,
    principal: PrincipalDep,
    search: Annotated[
        Text | None,
        Query(max_length=320, description="Part of an email, phone number or external id, "
                                          "in any case."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=paging.MAX_PAGE)] = 50,
    cursor: Annotated[Text | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> ContactList:
    page = contact_service.search(session, workspace_id=principal.workspace_id, text=search,
                                  limit=limit, cursor=cursor)
    return ContactList(items=[ContactRead.from_contact(c) for c in page.contacts],
                       next_cursor=page.next_cursor)


@router.get(
    "/{contact_id}",
    name="contacts:detail",
    summary="Get a contact with its recent runs",
    response_model=ContactDetail,
    responses=errors(401, 404, 422),
)
def get_contact(contact_id: str, session: SessionDep, principal: PrincipalDep) -> ContactDetail:
    detail = contact_service.detail(session, workspace_id=principal.workspace_id,
                                    contact_id=contact_id)
    return ContactDetail(**ContactRead.from_contact(detail.contact).model_dump(),
                         runs=[RunRead.from_row(r) for r in detail.runs])


class ExplainReason(BaseModel):
    code: str = Field(description="A reason code: " + ", ".join(
        f"`{code}`" for code in explain_service.CODES) + ".")
    at: datetime
    run_id: uuid.UUID | None = None
    attempt_id: uuid.UUID | None = None
    node_id: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict,
                                   description="What the record says: the cause of a refusal, "
                                               "the values a condition saw, an error, ...")


class NowCheck(BaseModel):
    check: Literal["workflow_active", "audience", "address", "suppression", "frequency_cap"]
    ok: bool
    says: str
    channel: str | None = None


class Explanation(BaseModel):
    contact: ContactRef
    workflow: str
    verdict: Literal["delivered", "sent", "in_progress", "not_sent", "not_enrolled"]
    reasons: list[ExplainReason] = Field(description="Newest first.")
    range_start: datetime
    range_end: datetime
    more: bool = Field(description="The range holds more runs than the 50 newest explained.")
    now: list[NowCheck] = Field(description="Would it send now? What a run started for this "
                                            "contact now would meet, evaluated without running "
                                            "anything.")


@router.get(
    "/{contact_id}/explain",
    name="contacts:explain",
    summary="Why a workflow did or did not reach this contact",
    description="A verdict and the reasons behind it, newest first, each read from what "
                "was recorded where it was decided: refused or duplicate triggers, schedule "
                "ticks that left the contact out, the runs, the branches their conditions "
                "took, and the delivery attempts (suppressed, capped, failed, bounced, sent, "
                "delivered). The last 7 days unless `range` or `from`/`to` say otherwise.",
    response_model=Explanation,
    responses=errors(401, 404, 422),
)
def explain_contact(
    contact_id: str, session: SessionDep, principal: PrincipalDep, runtime: RuntimeDep,
    workflow: Annotated[Text, Query(description="The workflow's key.")],
    range_: Annotated[Literal["24h", "7d", "30d"] | None,
                      Query(alias="range", description="Not together with from/to.")] = None,
    created_from: Annotated[datetime | None, Query(alias="from")] = None,
    created_to: Annotated[datetime | None, Query(alias="to")] = None,
) -> Explanation:
    found = explain_service.explain(
        session, workspace_id=principal.workspace_id, contact_id=contact_id,
        workflow_key=workflow, range_=range_, created_from=created_from,
        created_to=created_to, now=runtime.clock())
    return Explanation(
        contact=ContactRef(id=found.contact.id, email=found.contact.email,
                           phone=found.contact.phone),
        workflow=found.workflow.key, verdict=found.verdict,  # type: ignore[arg-type]
        reasons=[ExplainReason(code=r.code, at=r.at, run_id=r.run_id, attempt_id=r.attempt_id,
                               node_id=r.node_id, detail=r.detail) for r in found.reasons],
        range_start=found.start, range_end=found.end, more=found.more,
        now=[NowCheck(check=c.check, ok=c.ok, says=c.says, channel=c.channel)  # type: ignore[arg-type]
             for c in found.now])


class SuppressionLift(BaseModel):
    model_config = {"extra": "forbid", "json_schema_extra": {"examples": [
        {"channel": "email", "reason": "unsubscribed by mistake; asked to be added back"}]}}
    channel: Literal["email", "sms"]
    reason: str = Field(min_length=1, max_length=contact_service.MAX_REASON,
                        description="Why: kept in the audit trail with what the suppression was.")


@router.post(
    "/{contact_id}/suppression/lift",
    name="contacts:lift_suppression",
    summary="Lift a contact's suppression on a channel (admin)",
    description="Messages reach the contact on the channel again. The audit trail keeps what "
                "the suppression was (unsubscribed, bounced, complained) and the reason. 409 "
                "when the channel is not suppressed.",
    response_model=ContactRead,
    responses=errors(401, 403, 404, 409, 422),
)
def lift_suppression(contact_id: str, body: SuppressionLift, principal: AdminDep,
                     session: SessionDep, runtime: RuntimeDep) -> ContactRead:
    contact = contact_service.lift_suppression(
        session, workspace_id=principal.workspace_id, contact_id=contact_id,
        channel=body.channel, reason=body.reason, actor=principal.actor, now=runtime.clock())
    return ContactRead.from_contact(contact)


class EraseRequest(BaseModel):
    model_config = {"extra": "forbid", "json_schema_extra": {"examples": [
        {"reason": "erasure request by email, ticket 4711"}]}}
    reason: str = Field(min_length=1, max_length=erase_service.MAX_REASON,
                        description="Why (a request under the right to erasure, say): kept in "
                                    "the audit trail.")


class EraseResult(BaseModel):
    id: uuid.UUID
    erased_at: datetime
    runs: int = Field(description="The contact's runs, scrubbed (their statuses kept).")
    attempts: int = Field(description="The contact's messages, scrubbed (statuses kept).")


@router.post(
    "/{contact_id}/erase",
    name="contacts:erase",
    summary="Erase a contact's personal data (admin)",
    description="Removes the contact's identifiers and attributes, and the personal data of "
                "its runs, steps, messages and audit events, keeping their statuses and the "
                "counts; the contact stays as a tombstone with `erased_at`. Audited. 409 when "
                "it was erased already. It cannot be undone.",
    response_model=EraseResult,
    responses=errors(401, 403, 404, 409, 422),
)
def erase_contact(contact_id: str, body: EraseRequest, principal: AdminDep,
                  session: SessionDep, runtime: RuntimeDep) -> EraseResult:
    now = runtime.clock()
    erased = erase_service.erase(session, workspace_id=principal.workspace_id,
                                 contact_id=contact_id, reason=body.reason,
                                 actor=principal.actor, now=now)
    return EraseResult(id=erased.contact_id, erased_at=now, runs=erased.runs,
                       attempts=erased.attempts)
