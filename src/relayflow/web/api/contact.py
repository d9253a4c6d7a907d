"""/api/v1 routes for contacts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from relayflow.services import contact as contact_service
from relayflow.services import paging
from relayflow.web.api.responses import errors
from relayflow.web.api.schemas import (
    ContactDetail,
    ContactList,
    ContactRead,
    ContactUpsert,
    RunRead,
    Text,
)
from relayflow.web.deps import (
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
        phone_region=settings.default_phone_region,
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
