"""Response bodies of the delivery ops and provider endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from relayflow.engine.status import DeliveryStatus, RunStatus, StepStatus
from relayflow.services import delivery_ops
from relayflow.storage.repositories.delivery import DeliveryRow
from relayflow.web.api.schemas import ContactRef

Relation = Literal["self", "retry", "resend", "original"]


class DeliveryRead(BaseModel):
    id: uuid.UUID
    status: DeliveryStatus
    channel: str
    provider: str
    recipient: str
    subject: str
    body: str
    attempt_number: int
    provider_message_id: str | None
    provider_response: dict[str, Any] | None = Field(
        description="SMTP reply or HTTP status and body, secrets redacted.")
    error: str | None
    run_id: uuid.UUID | None = Field(description="The run that sent it; null for a resend.")
    step_seq: int | None = Field(description="The run step (seq) that sent it.")
    resend_of: uuid.UUID | None = Field(description="The attempt this manual resend repeats.")
    retry_of: uuid.UUID | None = Field(description="The attempt this one retries.")
    suppressed_by: str | None = Field(
        description="SUPPRESSED: the rule that stopped it (unsubscribed, bounced, complained).")
    workflow: str | None = Field(description="The key of the workflow that sent it.")
    contact: ContactRef | None
    created_at: datetime
    sent_at: datetime | None

    @classmethod
    def from_row(cls, row: DeliveryRow) -> DeliveryRead:
        return cls(**_fields(row))


def _fields(row: DeliveryRow) -> dict[str, Any]:
    a = row.attempt
    contact = (ContactRef(id=a.contact_id, email=row.contact_email, phone=row.contact_phone)
               if a.contact_id is not None else None)
    return {
        "id": a.id, "status": a.status, "channel": a.channel, "provider": a.provider,
        "recipient": a.recipient, "subject": a.subject, "body": a.body,
        "attempt_number": a.attempt_number, "provider_message_id": a.provider_message_id,
        "provider_response": a.provider_response, "error": a.error, "run_id": a.run_id,
        "step_seq": a.step_seq, "resend_of": a.resend_of, "retry_of": a.retry_of,
        "suppressed_by": a.suppressed_by, "workflow": row.workflow_key, "contact": contact,
        "created_at": a.created_at, "sent_at": a.sent_at,
    }


class DeliveryCounts(BaseModel):
    """Attempts per status under every filter except `status`."""

    ALL: int
    QUEUED: int
    SENT: int
    DELIVERED: int
    BOUNCED: int
    FAILED: int
    SUPPRESSED: int


class DeliveryList(BaseModel):
    items: list[DeliveryRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page.")
    counts: DeliveryCounts

    @classmethod
    def from_page(cls, page: delivery_ops.DeliveryPage) -> DeliveryList:
        return cls(items=[DeliveryRead.from_row(r) for r in page.rows],
                   next_cursor=page.next_cursor, counts=DeliveryCounts(**page.counts))


class ChainLinkRead(BaseModel):
    id: uuid.UUID
    attempt_number: int
    status: DeliveryStatus
    error: str | None
    created_at: datetime
    retry_of: uuid.UUID | None
    resend_of: uuid.UUID | None
    relation: Relation = Field(
        description="self: the attempt asked for; retry: a retry after a transient failure; "
        "resend: a manual resend; original: the first attempt the others descend from.")


class DeliveryRunRef(BaseModel):
    id: uuid.UUID
    status: RunStatus
    workflow: str


class DeliveryStepRef(BaseModel):
    seq: int
    node_id: str
    status: StepStatus


class DeliveryDetail(DeliveryRead):
    html: str | None = Field(description="The HTML part of an email, as sent.")
    chain: list[ChainLinkRead] = Field(
        description="Every attempt linked through retry_of / resend_of either way, oldest "
        "first, this one included.")
    run: DeliveryRunRef | None
    step: DeliveryStepRef | None

    @classmethod
    def from_detail(cls, detail: delivery_ops.Detail) -> DeliveryDetail:
        run = detail.run
        step = detail.step
        return cls(
            **_fields(detail.row),
            html=detail.row.attempt.html,
            chain=[ChainLinkRead(id=link.attempt.id, attempt_number=link.attempt.attempt_number,
                                 status=link.attempt.status, error=link.attempt.error,
                                 created_at=link.attempt.created_at,
                                 retry_of=link.attempt.retry_of,
                                 resend_of=link.attempt.resend_of, relation=link.relation)
                   for link in detail.chain],
            run=(DeliveryRunRef(id=run.run.id, status=run.run.status, workflow=run.workflow_key)
                 if run is not None else None),
            step=(DeliveryStepRef(seq=step.seq, node_id=step.node_id, status=step.status)
                  if step is not None else None),
        )


# --- providers ---------------------------------------------------------------------------


class ProviderConfigRead(BaseModel):
    """A channel's provider configuration: secrets by name (`*_secret`), never values."""

    model_config = ConfigDict(extra="allow")

    type: Literal["outbox", "smtp", "http"]


class ProviderMap(BaseModel):
    """The provider configuration of each channel (`{"type": "outbox"}` when none is set)."""

    email: ProviderConfigRead
    sms: ProviderConfigRead
