from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.orm import Session

from relayflow.storage.models import ApiKey, AuditEvent, Member, Workspace


def list_all(session: Session) -> list[Workspace]:
    return list(session.scalars(select(Workspace).order_by(Workspace.slug)))


def get_by_slug(session: Session, slug: str) -> Workspace | None:
    return session.scalar(select(Workspace).where(Workspace.slug == slug))


def get(session: Session, workspace_id: uuid.UUID) -> Workspace | None:
    return session.get(Workspace, workspace_id)


def add(session: Session, workspace: Workspace) -> Workspace:
    session.add(workspace)
    session.flush()
    return workspace


def add_api_key(session: Session, key: ApiKey) -> ApiKey:
    session.add(key)
    session.flush()
    return key


def list_api_keys(session: Session, workspace_id: uuid.UUID) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).where(ApiKey.workspace_id == workspace_id)
                                .order_by(ApiKey.created_at)))


def get_api_key_by_prefix(session: Session, prefix: str) -> ApiKey | None:
    return session.scalar(
        select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
    )


def get_api_key(session: Session, workspace_id: uuid.UUID, prefix: str) -> ApiKey | None:
    """A key of this workspace by prefix, revoked or not."""
    return session.scalar(
        select(ApiKey).where(ApiKey.workspace_id == workspace_id, ApiKey.prefix == prefix)
    )


def touch_api_key(session: Session, key_id: uuid.UUID, at: datetime) -> None:
    session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=at))


def add_member(session: Session, member: Member) -> Member:
    session.add(member)
    session.flush()
    return member


def get_member(session: Session, workspace_id: uuid.UUID, email: str) -> Member | None:
    return session.scalar(
        select(Member).where(Member.workspace_id == workspace_id, Member.email == email)
    )


def any_password_hash(session: Session, email: str) -> str | None:
    """The stored password hash of one membership of `email` (the oldest), in any workspace."""
    return session.scalar(select(Member.password_hash).where(Member.email == email)
                          .order_by(Member.created_at).limit(1))


def list_members(session: Session, workspace_id: uuid.UUID) -> list[Member]:
    return list(session.scalars(select(Member).where(Member.workspace_id == workspace_id)
                                .order_by(Member.created_at, Member.email)))


def lock(session: Session, workspace_id: uuid.UUID) -> None:
    """Hold the workspace's row until the transaction ends, so that changes which must see
    one settled set of members (the last admin stays) follow each other. PostgreSQL locks
    the row; SQLite renders no FOR UPDATE, and needs none: its writers queue whole
    transactions (storage/db.py, BEGIN IMMEDIATE)."""
    session.execute(select(Workspace.id).where(Workspace.id == workspace_id).with_for_update())


def count_admins(session: Session, workspace_id: uuid.UUID) -> int:
    return int(session.scalar(select(func.count()).select_from(Member).where(
        Member.workspace_id == workspace_id, Member.role == "admin")) or 0)


def remove_member(session: Session, member: Member) -> None:
    session.delete(member)
    session.flush()


def active_keys_created_by(
    session: Session, workspace_id: uuid.UUID, created_by: str
) -> list[ApiKey]:
    return list(session.scalars(
        select(ApiKey).where(ApiKey.workspace_id == workspace_id,
                             ApiKey.created_by == created_by, ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.created_at)))


def add_audit(session: Session, event: AuditEvent) -> None:
    session.add(event)


def list_audit(
    session: Session, workspace_id: uuid.UUID, *, limit: int, actions: Sequence[str] = (),
    before: tuple[datetime, uuid.UUID] | None = None,
) -> list[AuditEvent]:
    """Newest first, keyset on (at, id) over the (workspace_id, at) index."""
    query = select(AuditEvent).where(AuditEvent.workspace_id == workspace_id)
    if actions:
        query = query.where(AuditEvent.action.in_(list(actions)))
    if before is not None:
        query = query.where(tuple_(AuditEvent.at, AuditEvent.id) < before)
    query = query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
    return list(session.scalars(query))


def audit_of(session: Session, workspace_id: uuid.UUID, *, target_type: str, target_id: str,
             actions: Sequence[str], limit: int) -> list[AuditEvent]:
    """One object's audit events of the given actions, newest first."""
    return list(session.scalars(
        select(AuditEvent).where(AuditEvent.workspace_id == workspace_id,
                                 AuditEvent.target_type == target_type,
                                 AuditEvent.target_id == target_id,
                                 AuditEvent.action.in_(list(actions)))
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)))
