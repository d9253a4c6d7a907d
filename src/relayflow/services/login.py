"""Browser sign-in: members log in with email and password and get a server-side session.

One login opens every workspace where that email is a member with that password; the
session remembers which one is being viewed. Failed attempts are counted per email and
per client address over a sliding window, and past the limit the answer is 429 until the
oldest failure leaves the window, so a password cannot be guessed at speed.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from relayflow.errors import InvalidInput, NotFound, TooManyRequests, Unauthorized
from relayflow.services import audit as audit_service
from relayflow.services import auth as auth_service
from relayflow.services.auth import Principal
from relayflow.services.contact import normalize_email
from relayflow.storage.models import Member, WebSession, Workspace
from relayflow.storage.repositories import web_session as session_repo

SESSION_LIFETIME = timedelta(hours=12)
FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_EMAIL = 5
MAX_FAILURES_PER_ADDRESS = 20


@dataclass(frozen=True, slots=True)
class WorkspaceChoice:
    slug: str
    name: str
    role: str


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in person, the workspace in view and their role there."""

    email: str
    workspace_id: uuid.UUID
    workspace_slug: str
    workspace_name: str
    role: str
    csrf_token: str
    workspaces: tuple[WorkspaceChoice, ...]

    @property
    def principal(self) -> Principal:
        return Principal(workspace_id=self.workspace_id, role=self.role, actor=self.email)

    @property
    def can_write(self) -> bool:
        return self.principal.can_write

    @property
    def is_admin(self) -> bool:
        return self.principal.is_admin


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_rate(session: Session, keys: list[tuple[str, int]], now: datetime) -> None:
    since = now - FAILURE_WINDOW
    for key, limit in keys:
        count, oldest = session_repo.count_failures(session, key, since)
        if count >= limit and oldest is not None:
            wait = max(1, int((oldest + FAILURE_WINDOW - now).total_seconds()) + 1)
            raise TooManyRequests(
                f"Too many failed sign-ins; try again in {(wait + 59) // 60} minute(s).",
                retry_after=wait,
            )


def login(
    session: Session, *, email: str, password: str, address: str, now: datetime
) -> tuple[str, Viewer]:
    """Returns the session token for the cookie (never stored) and who signed in."""
    address_key = f"address:{address.strip().lower()[:300]}"
    try:
        email = normalize_email(email)
    except InvalidInput as exc:  # a malformed address is a failed sign-in like any other
        session_repo.add_failure(session, address_key, now)
        raise Unauthorized("Wrong email or password.") from exc
    email_key = f"email:{email[:320]}"
    keys = [(email_key, MAX_FAILURES_PER_EMAIL), (address_key, MAX_FAILURES_PER_ADDRESS)]
    _check_rate(session, keys, now)
    # One Argon2 hash whether the address is unknown or a member of many workspaces, so
    # the time of an answer says nothing about either (services/auth.py).
    candidates = session_repo.members_by_email(session, email)
    matched = auth_service.members_with_password(candidates, password=password)
    if not matched:
        for key, _ in keys:
            session_repo.add_failure(session, key, now)
        raise Unauthorized("Wrong email or password.")
    session_repo.clear_failures(session, email_key)
    session_repo.remove_expired(session, now)
    session_repo.prune_failures(session, now - FAILURE_WINDOW)
    token = secrets.token_urlsafe(32)
    row = WebSession(
        id=_hash(token), email=email, member_id=matched[0][0].id,
        member_ids={"ids": [str(m.id) for m, _ in matched]},
        csrf_token=secrets.token_urlsafe(32), created_at=now,
        expires_at=now + SESSION_LIFETIME,
    )
    session_repo.add(session, row)
    for member, workspace in matched:
        audit_service.record(session, workspace_id=workspace.id, actor=email,
                             action="member.login", target_type="member",
                             target_id=str(member.id), now=now, detail={})
    viewer = _viewer(row, matched)
    assert viewer is not None
    return token, viewer


def _viewer(row: WebSession, members: list[tuple[Member, Workspace]]) -> Viewer | None:
    if not members:
        return None
    current = next(((m, w) for m, w in members if m.id == row.member_id), members[0])
    member, workspace = current
    return Viewer(
        email=row.email, workspace_id=workspace.id, workspace_slug=workspace.slug,
        workspace_name=workspace.name, role=member.role, csrf_token=row.csrf_token,
        workspaces=tuple(WorkspaceChoice(w.slug, w.name, m.role) for m, w in members),
    )


def _load(
    session: Session, token: str, now: datetime
) -> tuple[WebSession, list[tuple[Member, Workspace]]] | None:
    if not token or len(token) > 200:
        return None
    row = session_repo.get(session, _hash(token), now)
    if row is None:
        return None
    ids = [uuid.UUID(i) for i in row.member_ids.get("ids", [])]
    # Only memberships that still exist with the email that signed in count.
    members = [(m, w) for m, w in session_repo.members_by_ids(session, ids)
               if m.email == row.email]
    return row, members


def resolve(session: Session, *, token: str, now: datetime) -> Viewer | None:
    """Who holds this session token, or None when it is unknown, expired or revoked."""
    loaded = _load(session, token, now)
    return None if loaded is None else _viewer(*loaded)


def switch_workspace(session: Session, *, token: str, slug: str, now: datetime) -> Viewer:
    loaded = _load(session, token, now)
    if loaded is None:
        raise Unauthorized("Sign in first.")
    row, members = loaded
    chosen = next((m for m, w in members if w.slug == slug), None)
    if chosen is None:
        raise NotFound(f"You are not a member of a workspace {slug!r}.")
    row.member_id = chosen.id
    viewer = _viewer(row, members)
    assert viewer is not None
    return viewer


def logout(session: Session, *, token: str) -> None:
    if token and len(token) <= 200:
        session_repo.remove(session, _hash(token))
