"""API keys (random, stored as SHA-256: they carry 256 bits, so a slow hash adds nothing)
and member passwords (argon2)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy.orm import Session

from relayflow.errors import InvalidInput, Unauthorized
from relayflow.storage.models import ApiKey, Member
from relayflow.storage.repositories import workspace as workspace_repo

ROLES = ("admin", "operator", "viewer")
_hasher = PasswordHasher()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a workspace and a role (an API key or a member)."""

    workspace_id: uuid.UUID
    role: str
    actor: str

    @property
    def can_write(self) -> bool:
        return self.role in ("admin", "operator")


def _hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(
    session: Session, *, workspace_id: uuid.UUID, role: str, created_by: str, now: datetime,
    name: str = "",
) -> tuple[ApiKey, str]:
    """Returns the row and the full key, which is shown once and never stored."""
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    prefix = "rf_" + secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    row = ApiKey(
        workspace_id=workspace_id, name=name, prefix=prefix, hash=_hash_key(secret), role=role,
        created_by=created_by, created_at=now,
    )
    workspace_repo.add_api_key(session, row)
    return row, f"{prefix}.{secret}"


def authenticate_key(session: Session, *, token: str, now: datetime) -> Principal:
    prefix, _, secret = token.partition(".")
    key = workspace_repo.get_api_key_by_prefix(session, prefix) if secret else None
    if key is None or not hmac.compare_digest(key.hash, _hash_key(secret)):
        raise Unauthorized("The API key is missing, unknown or revoked.")
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        workspace_repo.touch_api_key(session, key.id, now)
    return Principal(workspace_id=key.workspace_id, role=key.role, actor=f"key:{key.prefix}")


def add_member(
    session: Session, *, workspace_id: uuid.UUID, email: str, role: str, password: str,
    now: datetime,
) -> Member:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise InvalidInput("password must be at least 8 characters")
    member = Member(workspace_id=workspace_id, email=email.strip().lower(), role=role,
                    password_hash=_hasher.hash(password), created_at=now)
    return workspace_repo.add_member(session, member)


def verify_password(member: Member, password: str) -> bool:
    try:
        return _hasher.verify(member.password_hash, password)
    except VerificationError:
        return False
