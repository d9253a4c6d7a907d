"""Provider status callbacks: POST /providers/{workspace}/{channel}/events (signed)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request

from relayflow.services import callback as callback_service
from relayflow.storage.db import session_scope
from relayflow.web.api.responses import errors
from relayflow.web.deps import RuntimeDep

router = APIRouter(tags=["delivery callbacks"])


async def _raw_body(request: Request) -> bytes:
    return await request.body()  # the signature covers these exact bytes


@router.post(
    "/providers/{workspace}/{channel}/events",
    name="providers:events",
    summary="Receive delivery status events from a provider",
    description="Signed like webhooks (`Relayflow-Signature`, with the secret named by the "
    "provider's `events_secret`, or during a rotation with `<events_secret>_PREVIOUS`). "
    "Body: one event `{type: delivered|bounced|complained, message_id | attempt_id, "
    "bounce?: hard|soft}` or `{events: [...]}`. The same signed callback sent again changes "
    "nothing and is answered with `duplicate: true`.",
    responses=errors(400, 401, 404, 413, 422),
)
def receive_events(
    workspace: str, channel: str, body: Annotated[bytes, Depends(_raw_body)],
    runtime: RuntimeDep,
    relayflow_signature: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    with session_scope(runtime.sessions) as session:
        received = callback_service.receive(
            session, runtime, workspace_slug=workspace, channel=channel, raw_body=body,
            signature=relayflow_signature, now=runtime.clock())
    return {"applied": [{"attempt_id": a.attempt_id, "status": a.status,
                         "suppressed": a.suppressed} for a in received.applied],
            "duplicate": received.duplicate}
