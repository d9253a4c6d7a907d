"""Inbound webhook triggers: POST /hooks/{token} (no API key; optional signature)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response, status

from relayflow.config import Settings
from relayflow.services import webhook as webhook_service
from relayflow.storage.db import session_scope
from relayflow.web.api.responses import errors
from relayflow.web.api.schemas import RunEnqueued
from relayflow.web.deps import RuntimeDep, SettingsDep

router = APIRouter(tags=["webhooks"])


async def _raw_body(request: Request) -> bytes:
    # The signature covers the exact bytes sent, so the body is read raw, not parsed.
    return await request.body()


def _phone_region(request: Request) -> str | None:
    settings: Settings = request.app.state.settings
    return settings.default_phone_region


_EVENT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "Any JSON object: it becomes the run's `event`.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


@router.post(
    "/hooks/{token}",
    name="hooks:receive",
    summary="Start a run from an inbound webhook",
    description=(
        "The JSON object sent becomes the run's `event`; the workflow's trigger `contact` "
        "mapping picks the contact. When the trigger names a `signing_secret`, the request "
        "must carry `Relayflow-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "
        "\"<t>.\" + body>` within 5 minutes of the server's clock; during a rotation, a "
        "signature made with the secret `<signing_secret>_PREVIOUS` is accepted too. The same "
        "`Idempotency-Key` on the same workflow never opens a second run: the answer repeats "
        "the first run's id with `duplicate: true` (still 202). A signed request sent without "
        "one gets `signed:<sha256 of \"<t>.\" + body>` as its key, so the same signed request "
        "sent again is answered the same way; sent again under another key, it is 409."
    ),
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RunEnqueued,
    responses=errors(400, 401, 404, 409, 413, 422, 429),
    openapi_extra=_EVENT_BODY,
)
def receive_webhook(
    request: Request,
    response: Response,
    token: str,
    body: Annotated[bytes, Depends(_raw_body)],
    runtime: RuntimeDep,
    settings: SettingsDep,
    phone_region: Annotated[str | None, Depends(_phone_region)],
    relayflow_signature: Annotated[
        str | None, Header(description="`t=<unix seconds>,v1=<hex>`; several v1 allowed.")
    ] = None,
    idempotency_key: Annotated[
        str | None, Header(description="At most 200 characters; repeats return the first run.")
    ] = None,
) -> RunEnqueued:
    # Counted in its own transaction first: the count must survive the 429 it may cause
    # (the work's transaction rolls back on any error), and a refused request does no work.
    with session_scope(runtime.sessions) as session:
        admission = webhook_service.admit(session, token=token, now=runtime.clock(),
                                          per_minute=settings.rate_limit_webhook_per_minute)
    admission.check("This webhook")
    response.headers.update(admission.headers())
    # The transaction is committed inside this call, not by SessionDep after it: SessionDep
    # keeps its connection until FastAPI has validated the response in another worker
    # thread, and under a burst of webhooks every worker thread can end up waiting for a
    # connection that only such a finished request would give back (a 30 s stall, then 500).
    with session_scope(runtime.sessions) as session:
        enrolled = webhook_service.receive(
            session, token=token, body=body, signature=relayflow_signature,
            idempotency_key=idempotency_key, cipher=runtime.cipher, now=runtime.clock(),
            phone_region=phone_region,
        )
    worker = request.app.state.worker
    if worker is not None and not enrolled.duplicate:
        worker.wake()
    return RunEnqueued(id=enrolled.run.id, status=enrolled.run.status,
                       duplicate=enrolled.duplicate)
