"""API keys (random, stored as SHA-256: they carry 256 bits, so a slow hash adds nothing)
and member passwords (argon2)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from relayflow.errors import Conflict, InvalidInput, NotFound, Unauthorized
from relayflow.services import audit as audit_service
from relayflow.services import rate_limit as rate_limit_service
from relayflow.services.contact import normalize_email
from relayflow.storage.models import ApiKey, Member
from relayflow.storage.repositories import workspace as workspace_repo

ROLES = ("admin", "operator", "viewer")
PREFIX_RE = re.compile(r"^[A-Za-z0-9_]{1,32}$")
MAX_NAME = 200
# Argon2id at the library's recommended cost (about 0.2 s per hash on a small machine).
# The test suite swaps in a cheaper instance (tests/conftest.py): it signs in thousands of
# times, and what it checks does not depend on the cost.
password_hasher = PasswordHasher()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a workspace and a role (an API key or a member)."""

    workspace_id: uuid.UUID
    role: str
    actor: str

    @property
    def can_write(self) -> bool:
        return self.role in ("admin", "operator")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")


# --- API keys ---------------------------------------------------------------------------


def create_api_key(
    session: Session, *, workspace_id: uuid.UUID, role: str, created_by: str, now: datetime,
    name: str = "",
) -> tuple[ApiKey, str]:
    """Returns the row and the full key, which is shown once and never stored."""
    check_role(role)
    if len(name) > MAX_NAME:
        raise InvalidInput(f"a key name is at most {MAX_NAME} characters")
    prefix = "rf_" + secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    row = ApiKey(
        workspace_id=workspace_id, name=name, prefix=prefix, hash=_hash_key(secret), role=role,
        created_by=created_by, created_at=now,
    )
    workspace_repo.add_api_key(session, row)
    audit_service.record(session, workspace_id=workspace_id, actor=created_by,
                         action="key.create", target_type="api_key", target_id=prefix, now=now,
                         detail={"role": role, "name": name})
    return row, f"{prefix}.{secret}"


def list_api_keys(session: Session, *, workspace_id: uuid.UUID) -> list[ApiKey]:
    return workspace_repo.list_api_keys(session, workspace_id)


def revoke_api_key(
    session: Session, *, workspace_id: uuid.UUID, prefix: str, actor: str, now: datetime
) -> ApiKey:
    """Revoke at once: the next request with this key is refused (401)."""
    key = (workspace_repo.get_api_key(session, workspace_id, prefix)
           if PREFIX_RE.match(prefix) else None)
    if key is None:
        raise NotFound(f"no API key {prefix!r} in this workspace")
    if key.revoked_at is not None:
        raise Conflict(f"API key {prefix} was already revoked")
    revoke(session, key, actor=actor, now=now)
    return key


def revoke(
    session: Session, key: ApiKey, *, actor: str, now: datetime, reason: str | None = None
) -> None:
    """Revoke an active key at once, audited; `reason` names the change that revoked it
    when nobody picked the key itself (e.g. `member.remove`)."""
    key.revoked_at = now
    detail = {"role": key.role, "name": key.name}
    if reason:
        detail["reason"] = reason
    audit_service.record(session, workspace_id=key.workspace_id, actor=actor,
                         action="key.revoke", target_type="api_key", target_id=key.prefix,
                         now=now, detail=detail)


def _find_key(session: Session, token: str) -> ApiKey:
    prefix, _, secret = token.partition(".")
    known = bool(secret) and PREFIX_RE.match(prefix) is not None
    key = workspace_repo.get_api_key_by_prefix(session, prefix) if known else None
    if key is None or not hmac.compare_digest(key.hash, _hash_key(secret)):
        raise Unauthorized("The API key is missing, unknown or revoked.")
    return key


def _touch(session: Session, key: ApiKey, now: datetime) -> None:
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        workspace_repo.touch_api_key(session, key.id, now)


def _principal(key: ApiKey) -> Principal:
    return Principal(workspace_id=key.workspace_id, role=key.role, actor=f"key:{key.prefix}")


def admit_key(
    session: Session, *, token: str, now: datetime, per_minute: int
) -> tuple[Principal, rate_limit_service.Admission]:
    """Authenticate the key (401, nothing counted) and count the request against its limit.
    Commit before acting on the answer, so a refused request stays counted; only an
    admitted request marks the key as used."""
    key = _find_key(session, token)
    admission = rate_limit_service.count(session, key=f"key:{key.prefix}", limit=per_minute,
                                         now=now)
    if admission.admitted:
        _touch(session, key, now)
    return _principal(key), admission


# --- members ----------------------------------------------------------------------------


def add_member(
    session: Session, *, workspace_id: uuid.UUID, email: str, role: str, password: str,
    now: datetime, actor: str = "cli",
) -> Member:
    check_role(role)
    address = normalize_email(email)
    if len(address) > 320:
        raise InvalidInput("an email address is at most 320 characters")
    if len(password) < 8:
        raise InvalidInput("password must be at least 8 characters")
    if workspace_repo.get_member(session, workspace_id, address) is not None:
        raise Conflict(f"{address} is already a member of this workspace")
    member = Member(workspace_id=workspace_id, email=address, role=role,
                    password_hash=hash_password(
                        password, like=workspace_repo.any_password_hash(session, address)),
                    created_at=now)
    try:
        with session.begin_nested():
            workspace_repo.add_member(session, member)
    except IntegrityError as exc:  # added by a concurrent request since the check above
        raise Conflict(f"{address} is already a member of this workspace") from exc
    audit_service.record(session, workspace_id=workspace_id, actor=actor, action="member.add",
                         target_type="member", target_id=str(member.id), now=now,
                         detail={"email": address, "role": role})
    return member


def list_members(session: Session, *, workspace_id: uuid.UUID) -> list[Member]:
    return workspace_repo.list_members(session, workspace_id)


def set_password(member: Member, password: str) -> None:
    if len(password) < 8:
        raise InvalidInput("password must be at least 8 characters")
    member.password_hash = hash_password(password, like=member.password_hash)


def verify_password(member: Member, password: str) -> bool:
    try:
        return password_hasher.verify(member.password_hash, password)
    except VerificationError:
        return False


# --- passwords: one hash per sign-in ------------------------------------------------------
#
# An address may be a member of many workspaces, each membership with its own password. To
# open every one whose password matches without one Argon2 verify per membership (the time
# of a failed sign-in would then tell how many workspaces an address belongs to), the
# memberships of one address share one salt: random, made with the address's first
# membership and reused by every later one. The same password then gives the same hash
# string in each, so a sign-in hashes once and compares strings. An unknown address costs
# the same single hash. The salt is random, never derived from the address: nobody can
# compute hashes for a known address before seeing the database.


T = TypeVar("T")
SALT_BYTES = 16


def _salt(encoded: str) -> bytes | None:
    # "$argon2id$v=19$m=...,t=...,p=...$<salt>$<hash>", base64 without padding.
    parts = encoded.split("$")
    if len(parts) != 6:
        return None
    try:
        return base64.b64decode(parts[4] + "=" * (-len(parts[4]) % 4), validate=True)
    except ValueError:
        return None


def hash_password(password: str, *, like: str | None = None) -> str:
    """Argon2id. `like`, a stored hash of a membership of the same address, lends its salt
    (so one hash at sign-in checks them all); without it the salt is fresh and random."""
    salt = (_salt(like) if like else None) or secrets.token_bytes(SALT_BYTES)
    return password_hasher.hash(password, salt=salt)


def _parameters(encoded: str) -> str:
    # Everything but the hash: the algorithm, its cost and the salt.
    return encoded.rsplit("$", 1)[0]


def members_with_password(
    members: list[tuple[Member, T]], *, password: str
) -> list[tuple[Member, T]]:
    """The memberships (of one address) whose password is `password`, for one Argon2 hash.

    A stored hash with another salt or cost (written before memberships shared a salt, or
    before a change of cost) is verified on its own, and rewritten when it matches, so it
    costs extra only until its next successful sign-in."""
    digest = hash_password(password, like=members[0][0].password_hash if members else None)
    matched: list[tuple[Member, T]] = []
    for member, other in members:
        if _parameters(member.password_hash) == _parameters(digest):
            if hmac.compare_digest(member.password_hash.encode(), digest.encode()):
                matched.append((member, other))
        elif verify_password(member, password):
            member.password_hash = digest
            matched.append((member, other))
    return matched
