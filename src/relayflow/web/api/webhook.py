"""/api/v1 routes for webhooks."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from relayflow.services import webhook as webhook_service
from relayflow.web.api.responses import WRITE, errors
from relayflow.web.deps import RuntimeDep, SessionDep, WriterDep

router = APIRouter(prefix="/workflows", tags=["webhooks"])


class WebhookRotated(BaseModel):
    webhook_url: str = Field(description="The new address; the previous one now answers 404.")


@router.post(
    "/{key}/webhook/rotate",
    name="workflows:webhook_rotate",
    summary="Give a webhook workflow a new address",
    response_model=WebhookRotated,
    responses=errors(*WRITE),
)
def rotate_webhook(
    key: str, principal: WriterDep, session: SessionDep, runtime: RuntimeDep
) -> WebhookRotated:
    workflow = webhook_service.rotate_token(
        session, workspace_id=principal.workspace_id, key=key, actor=principal.actor,
        now=runtime.clock(),
    )
    url = webhook_service.url_of(workflow, base_url=runtime.base_url)
    assert url is not None  # rotate_token refuses workflows without a webhook
    return WebhookRotated(webhook_url=url)
