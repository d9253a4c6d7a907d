"""/api/v1 routes for the delivery provider of each channel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path

from relayflow.services import provider as provider_service
from relayflow.web.api.delivery_schemas import ProviderConfigRead, ProviderMap
from relayflow.web.api.responses import errors
from relayflow.web.api.schemas import JsonObject, Text
from relayflow.web.deps import AdminDep, PrincipalDep, RuntimeDep, SessionDep

router = APIRouter(prefix="/providers", tags=["providers"])

# A plain string, so an unknown channel is answered 404 like any unknown object.
Channel = Annotated[Text, Path(description="`email` or `sms`.")]
_EXAMPLES = {
    "smtp": {"value": {"type": "smtp", "host": "smtp.example.com", "port": 587,
                       "tls": "starttls", "username": "ops", "password_secret": "SMTP_PASS",
                       "from": "ops@example.com"}},
    "http": {"value": {"type": "http", "url": "https://sms.example.com/messages",
                       "method": "POST", "auth_header_secret": "SMS_TOKEN",
                       "body": {"to": "{{ to }}", "text": "{{ body }}"},
                       "message_id_path": "body.id"}},
    "outbox": {"value": {"type": "outbox"}},
}


def _read(config: dict[str, Any]) -> ProviderConfigRead:
    return ProviderConfigRead.model_validate(config)


@router.get("", name="providers:list", summary="Get the provider of every channel",
            response_model=ProviderMap, responses=errors(401))
def list_providers(session: SessionDep, principal: PrincipalDep) -> ProviderMap:
    configs = provider_service.show_all(session, workspace_id=principal.workspace_id)
    return ProviderMap(email=_read(configs["email"]), sms=_read(configs["sms"]))


@router.get(
    "/{channel}", name="providers:detail", summary="Get a channel's provider",
    description="Secrets appear by name (`password_secret`, `auth_header_secret`), never by "
                "value. `{\"type\": \"outbox\"}` when none is set.",
    response_model=ProviderConfigRead, responses=errors(401, 404, 422),
)
def get_provider(channel: Channel, session: SessionDep, principal: PrincipalDep
                 ) -> ProviderConfigRead:
    return _read(provider_service.show(session, workspace_id=principal.workspace_id,
                                       channel=channel))


@router.put(
    "/{channel}", name="providers:put", summary="Set a channel's provider (admin)",
    description="Validates the configuration (422 lists every problem in "
                "`details.problems`), checks that each secret it names exists, and replaces "
                "the channel's provider. Returns the configuration as stored.",
    response_model=ProviderConfigRead, responses=errors(400, 401, 403, 404, 413, 422),
)
def put_provider(
    channel: Channel, principal: AdminDep, session: SessionDep, runtime: RuntimeDep,
    body: Annotated[JsonObject, Body(openapi_examples=_EXAMPLES)],
) -> ProviderConfigRead:
    stored = provider_service.put(session, workspace_id=principal.workspace_id,
                                  channel=channel, data=body, now=runtime.clock(),
                                  actor=principal.actor, network_allow=runtime.network_allow)
    return _read(stored)


@router.delete(
    "/{channel}", name="providers:delete", summary="Reset a channel to the outbox (admin)",
    response_model=ProviderConfigRead, responses=errors(401, 403, 404, 422),
)
def delete_provider(channel: Channel, principal: AdminDep, session: SessionDep,
                    runtime: RuntimeDep) -> ProviderConfigRead:
    return _read(provider_service.delete(session, workspace_id=principal.workspace_id,
                                         channel=channel, now=runtime.clock(),
                                         actor=principal.actor))
