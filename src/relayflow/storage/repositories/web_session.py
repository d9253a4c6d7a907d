"""Browser login sessions and the failed-login log."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from relayflow.storage.models import LoginFailure, Member, WebSession, Workspace


def add(session: Session, row: WebSession) -> None:
    session.add(row)
    session.flush()


def get(session: Session, token_hash: str, now: datetime) -> WebSession | None:
    return session.scalar(
        select(WebSession).where(WebSession.id == token_hash, WebSession.expires_at > now)
    )


def remove(session: Session, token_hash: str) -> None:
    session.execute(delete(WebSession).where(WebSession.id == token_hash))


def list_of_email(session: Session, email: str) -> list[WebSession]:
    """Every session signed in with `email`, live or expired. No index: the table holds
    the live sessions only (each sign-in prunes the expired), a handful per person."""
    return list(session.scalars(select(WebSession).where(WebSession.email == email)))


def remove_expired(session: Session, now: datetime) -> None:
    session.execute(delete(WebSession).where(WebSession.expires_at <= now))


def members_by_email(session: Session, email: str) -> list[tuple[Member, Workspace]]:
    rows = session.execute(
        select(Member, Workspace).join(Workspace, Workspace.id == Member.workspace_id)
        .where(Member.email == email).order_by(Workspace.slug)
    )
    return [(member, workspace) for member, workspace in rows]


def members_by_ids(
    session: Session, ids: list[uuid.UUID]
) -> list[tuple[Member, Workspace]]:
    if not ids:
        return []
    rows = session.execute(
        select(Member, Workspace).join(Workspace, Workspace.id == Member.workspace_id)
        .where(Member.id.in_(ids)).order_by(Workspace.slug)
    )
    return [(member, workspace) for member, workspace in rows]


def add_failure(session: Session, key: str, at: datetime) -> None:
    session.add(LoginFailure(key=key, at=at))
    session.flush()


def count_failures(session: Session, key: str, since: datetime) -> tuple[int, datetime | None]:
    """How many failures for `key` since `since`, and the oldest of them."""
    count, oldest = session.execute(
        select(func.count(), func.min(LoginFailure.at))
        .where(LoginFailure.key == key, LoginFailure.at > since)
    ).one()
    return int(count), oldest


def clear_failures(session: Session, key: str) -> None:
    session.execute(delete(LoginFailure).where(LoginFailure.key == key))


def prune_failures(session: Session, before: datetime) -> None:
    session.execute(delete(LoginFailure).where(LoginFailure.at <= before))
