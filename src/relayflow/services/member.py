"""Member administration: change a member's role, remove them, reset their password
(adding and listing are in services/auth.py, with the passwords).

Every change is audited with who made it, never with a password, and takes effect on the
member's next request:
- the role is read from the member's row on every request (services/login.resolve), so a
  role change needs nothing more;
- a removal or a password reset ends the member's access to this workspace in every
  browser session at once; a session that also opens other workspaces (one sign-in opens
  every workspace whose password matched) keeps those, and one left with none ends;
- the API keys a member created here (`created_by` is their email) are revoked with them:
  all of them when they are removed, those with a role above their new one when demoted;
- a workspace with admins keeps at least one: removing or demoting the last is refused.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from relayflow.errors import Conflict, InvalidInput, NotFound
from relayflow.services import audit as audit_service
from relayflow.services import auth as auth_service
from relayflow.services.contact import normalize_email
from relayflow.storage.models import Member
from relayflow.storage.repositories import web_session as session_repo
from relayflow.storage.repositories import workspace as workspace_repo

RANK = {role: rank for rank, role in enumerate(reversed(auth_service.ROLES))}
# 20 URL-safe characters (120 random bits): typed once, then changed or kept.
PASSWORD_BYTES = 15


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberChange:
    """What a change did besides itself: the sessions that lost this workspace (live ones
    only are counted) and the prefixes of the member's keys it revoked."""

    member: Member
    sessions_ended: int = 0
    revoked_keys: tuple[str, ...] = ()


def change_role(
    session: Session, *, workspace_id: uuid.UUID, email: str, role: str, actor: str,
    now: datetime,
) -> MemberChange:
    auth_service.check_role(role)
    workspace_repo.lock(session, workspace_id)
    member = _find(session, workspace_id, email)
    if member.role == role:
        return MemberChange(member=member)
    if member.role == "admin":
        _keep_an_admin(session, member)
    previous, member.role = member.role, role
    revoked = _revoke_keys(session, member, above=role, actor=actor, now=now,
                           reason="member.role")
    audit_service.record(session, workspace_id=workspace_id, actor=actor, action="member.role",
                         target_type="member", target_id=str(member.id), now=now,
                         detail={"email": member.email, "from": previous, "to": role,
                                 "revoked_keys": list(revoked)})
    return MemberChange(member=member, revoked_keys=revoked)


def remove(
    session: Session, *, workspace_id: uuid.UUID, email: str, actor: str, now: datetime
) -> MemberChange:
    workspace_repo.lock(session, workspace_id)
    member = _find(session, workspace_id, email)
    if member.role == "admin":
        _keep_an_admin(session, member)
    ended = _end_sessions(session, member, now)
    revoked = _revoke_keys(session, member, above=None, actor=actor, now=now,
                           reason="member.remove")
    audit_service.record(session, workspace_id=workspace_id, actor=actor,
                         action="member.remove", target_type="member",
                         target_id=str(member.id), now=now,
                         detail={"email": member.email, "role": member.role,
                                 "sessions_ended": ended, "revoked_keys": list(revoked)})
    workspace_repo.remove_member(session, member)
    return MemberChange(member=member, sessions_ended=ended, revoked_keys=revoked)


def reset_password(
    session: Session, *, workspace_id: uuid.UUID, email: str, actor: str, now: datetime
) -> tuple[MemberChange, str]:
    """A new random password for the membership, returned this once (only its hash is
    kept). The old one stops working and the member's sessions lose this workspace; their
    keys stay (a password is not a key; the keys page names each key's creator)."""
    workspace_repo.lock(session, workspace_id)
    member = _find(session, workspace_id, email)
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    auth_service.set_password(member, password)
    ended = _end_sessions(session, member, now)
    audit_service.record(session, workspace_id=workspace_id, actor=actor,
                         action="member.password_reset", target_type="member",
                         target_id=str(member.id), now=now,
                         detail={"email": member.email, "sessions_ended": ended})
    return MemberChange(member=member, sessions_ended=ended), password


def _find(session: Session, workspace_id: uuid.UUID, email: str) -> Member:
    """The member by email, normalised as everywhere; what is no address names nobody."""
    try:
        address: str | None = normalize_email(email)
    except InvalidInput:
        address = None
    member = (workspace_repo.get_member(session, workspace_id, address)
              if address and len(address) <= 320 else None)
    if member is None:
        raise NotFound(f"no member {email!r} in this workspace")
    return member


def _keep_an_admin(session: Session, member: Member) -> None:
    if workspace_repo.count_admins(session, member.workspace_id) <= 1:
        raise Conflict(f"{member.email} is the last admin of this workspace; make another "
                       f"member admin first")


def _end_sessions(session: Session, member: Member, now: datetime) -> int:
    """Take this membership out of every session that holds it; a session left with no
    workspace ends. Returns how many live sessions lost the workspace."""
    mine, ended = str(member.id), 0
    for row in session_repo.list_of_email(session, member.email):
        ids = [str(i) for i in row.member_ids.get("ids", [])]
        if mine not in ids and row.member_id != member.id:
            continue
        if row.expires_at > now:
            ended += 1
        left = [i for i in ids if i != mine]
        if not left:
            session_repo.remove(session, row.id)
            continue
        row.member_ids = {"ids": left}  # a new value: the JSON column tracks assignment only
        if row.member_id == member.id:
            row.member_id = uuid.UUID(left[0])
    session.flush()
    return ended


def _revoke_keys(
    session: Session, member: Member, *, above: str | None, actor: str, now: datetime,
    reason: str,
) -> tuple[str, ...]:
    """Revoke the active keys the member created here: all, or those whose role is above
    `above`. Keys made with another key or the CLI name no person and are left alone."""
    revoked = []
    for key in workspace_repo.active_keys_created_by(session, member.workspace_id,
                                                     member.email):
        if above is None or RANK.get(key.role, len(RANK)) > RANK[above]:
            auth_service.revoke(session, key, actor=actor, now=now, reason=reason)
            revoked.append(key.prefix)
    session.flush()
    return tuple(revoked)
