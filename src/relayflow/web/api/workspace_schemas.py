"""Bodies of the workspace administration API: API keys, members and the audit log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from relayflow.storage.models import ApiKey, AuditEvent, Member
from relayflow.web.api.schemas import Text

Role = Literal["admin", "operator", "viewer"]
ROLE_HELP = ("admin: everything, including keys and members; operator: read, trigger, "
             "cancel, retry and change workflows and secrets; viewer: read only.")


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"name": "CRM sync", "role": "operator"}]})

    name: Text = Field(default="", max_length=200, description="What the key is for.")
    role: Role = Field(description=ROLE_HELP)


class KeyRead(BaseModel):
    """An API key as it may be shown: never its secret part or hash."""

    prefix: str = Field(description="The key's public part (before the dot); its id.")
    name: str
    role: Role
    created_by: str | None
    created_at: datetime
    last_used_at: datetime | None = Field(description="Updated at most once a minute.")
    revoked_at: datetime | None

    @classmethod
    def from_key(cls, key: ApiKey) -> KeyRead:
        return cls(prefix=key.prefix, name=key.name, role=key.role,
                   created_by=key.created_by, created_at=key.created_at,
                   last_used_at=key.last_used_at, revoked_at=key.revoked_at)


class KeyCreated(KeyRead):
    api_key: str = Field(description="The full key. Shown this once: only its hash is kept.")


class KeyList(BaseModel):
    items: list[KeyRead]


class MemberCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"email": "lin@example.com", "role": "viewer", "password": "a long passphrase"}]})

    email: Text = Field(max_length=320)
    role: Role = Field(description=ROLE_HELP)
    password: Text = Field(min_length=8, max_length=1024)


class MemberRead(BaseModel):
    email: str
    role: Role
    created_at: datetime

    @classmethod
    def from_member(cls, member: Member) -> MemberRead:
        return cls(email=member.email, role=member.role,
                   created_at=member.created_at)


class MemberList(BaseModel):
    items: list[MemberRead]


class MemberUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"role": "operator"}]})

    role: Role = Field(description=ROLE_HELP)


_REVOKED = ("Prefixes of the API keys this member created (in the settings, signed in) that "
            "the change revoked: all of them on removal, those above the new role on a "
            "demotion.")
_ENDED = "How many live browser sessions lost this workspace (they sign in again)."


class MemberUpdated(MemberRead):
    revoked_keys: list[str] = Field(description=_REVOKED)


class MemberRemoved(MemberRead):
    sessions_ended: int = Field(description=_ENDED)
    revoked_keys: list[str] = Field(description=_REVOKED)


class MemberPasswordReset(MemberRead):
    password: str = Field(description="The new password, random. Shown this once: only its "
                          "hash is kept.")
    sessions_ended: int = Field(description=_ENDED)


class AuditRead(BaseModel):
    id: uuid.UUID
    actor: str = Field(description="`key:<prefix>` for an API key, `cli`, or a member.")
    action: str = Field(description="e.g. run.cancel, run.retry, workflow.activate, "
                        "key.create, secret.set.")
    target_type: str
    target_id: str
    detail: dict[str, Any]
    at: datetime

    @classmethod
    def from_event(cls, event: AuditEvent) -> AuditRead:
        return cls(id=event.id, actor=event.actor, action=event.action,
                   target_type=event.target_type, target_id=event.target_id,
                   detail=event.detail or {}, at=event.at)


class AuditList(BaseModel):
    items: list[AuditRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page.")
