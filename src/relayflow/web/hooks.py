"""Inbound webhook triggers: POST /hooks/{token} (no API key; optional signature)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status

from relayflow.services.signed import SIGNATURE_HEADER
from relayflow.services.webhook import Inbound
from relayflow.telemetry import tracing
from relayflow.web.api.responses import errors
from relayflow.web.api.schemas import RunEnqueued
from relayflow.web.intake import Intake

router = APIRouter(tags=["webhooks"])
PREFIX = "/hooks/"

# The handler reads its two headers itself (no dependency injection on the busiest route);
# they are documented here.
_EVENT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "Any JSON object: it becomes the run's `event`.",
        "content": {"application/json": {"schema": {"type": "object"}, "examples": {
            "order": {"value": {"order_id": 1001, "customer": {"email": "ada@example.com"}}}}}},
    },
    "parameters": [
        {"name": SIGNATURE_HEADER.lower(), "in": "header", "required": False,
         "description": "`t=<unix seconds>,v1=<hex>`; several v1 allowed.",
         "schema": {"type": "string"}},
        {"name": "idempotency-key", "in": "header", "required": False,
         "description": "At most 200 characters; repeats return the first run.",
         "schema": {"type": "string"}},
    ],
}


@router.post(
    PREFIX + "{token}",
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
async def receive_webhook(request: Request, token: str) -> Response:
    # The signature covers the exact bytes sent, so the body is read raw, not parsed. The
    # request joins the batch being gathered (web/intake.py): it is counted against the
    # webhook's rate limit and, if admitted, opens its run; both committed before the answer.
    intake: Intake = request.app.state.intake
    body = await request.body()
    with tracing.current("webhook intake", traceparent=request.headers.get("traceparent"),
                         attributes={"http.route": PREFIX + "{token}"}) as span:
        accepted = await intake.receive(Inbound(
            token=token, body=body, signature=request.headers.get(SIGNATURE_HEADER),
            idempotency_key=request.headers.get("Idempotency-Key"),
            traceparent=tracing.traceparent(span)))
        tracing.annotate(span, {"relayflow.run_id": str(accepted.enrolled.run.id),
                                "relayflow.duplicate": accepted.enrolled.duplicate})
    run = accepted.enrolled.run
    answer = RunEnqueued(id=run.id, status=run.status, duplicate=accepted.enrolled.duplicate)
    return Response(answer.model_dump_json(), status_code=status.HTTP_202_ACCEPTED,
                    media_type="application/json", headers=accepted.admission.headers())
