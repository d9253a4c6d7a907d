"""The two reads the worker makes just before a send: the channel's provider configuration
and the contact's suppression state, both current as of the send."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from relayflow.storage import dialect
from relayflow.storage.models import Contact, DeliveryAttempt, Provider


def config(session: Session, workspace_id: uuid.UUID, channel: str) -> dict[str, Any] | None:
    return session.scalar(select(Provider.config).where(Provider.workspace_id == workspace_id,
                                                         Provider.channel == channel))


def suppressed(session: Session, contact_id: uuid.UUID | None) -> dict[str, Any]:
    if contact_id is None:
        return {}
    return session.scalar(select(Contact.suppressed).where(Contact.id == contact_id)) or {}


def types_of(session: Session,
             workspace_ids: Iterable[uuid.UUID]) -> dict[tuple[uuid.UUID, str], str]:
    """The provider type configured for each (workspace, channel) of these workspaces;
    a channel left out sends through the outbox."""
    ids = list(set(workspace_ids))
    if not ids:
        return {}
    rows = session.execute(select(Provider.workspace_id, Provider.channel, Provider.config)
                           .where(Provider.workspace_id.in_(ids)))
    return {(ws, channel): str((config or {}).get("type", "outbox"))
            for ws, channel, config in rows}


def suppressed_many(session: Session,
                    contact_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    """`suppressed` of many contacts in one query (contacts with none are left out)."""
    ids = list(set(contact_ids))
    if not ids:
        return {}
    rows = session.execute(select(Contact.id, Contact.suppressed).where(Contact.id.in_(ids)))
    return {contact_id: value for contact_id, value in rows if value}


def attempt_for_event(session: Session, workspace_id: uuid.UUID, channel: str, *,
                      message_id: str | None, attempt_id: uuid.UUID | None,
                      ) -> DeliveryAttempt | None:
    """The attempt a provider callback speaks of: by our attempt id or its message id."""
    query = select(DeliveryAttempt).where(DeliveryAttempt.workspace_id == workspace_id,
                                          DeliveryAttempt.channel == channel)
    if attempt_id is not None:
        query = query.where(DeliveryAttempt.id == attempt_id)
    elif message_id:
        query = query.where(DeliveryAttempt.provider_message_id == message_id)
    else:
        return None
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return session.scalars(query.limit(1)).first()


def contact_for_update(session: Session, contact_id: uuid.UUID) -> Contact | None:
    query = select(Contact).where(Contact.id == contact_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return session.scalar(query)


def attempt(session: Session, workspace_id: uuid.UUID,
            attempt_id: uuid.UUID) -> DeliveryAttempt | None:
    return session.scalar(select(DeliveryAttempt).where(
        DeliveryAttempt.workspace_id == workspace_id, DeliveryAttempt.id == attempt_id))


def queued_resends(session: Session, *, limit: int) -> list[DeliveryAttempt]:
    """Manual resends (attempts without a run) that nobody has started sending."""
    return list(session.scalars(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.run_id.is_(None), DeliveryAttempt.status == "QUEUED",
               DeliveryAttempt.send_started_at.is_(None))
        .order_by(DeliveryAttempt.created_at).limit(limit)))


def start_sending(session: Session, attempt_id: uuid.UUID) -> datetime | None:
    """Claim a queued attempt for sending, stamped with the database's clock (so no
    worker's clock decides when a claim counts as abandoned); the stamp, which fences the
    result, or None if another worker already claimed it."""
    stamp = dialect.current_time(session)
    result = session.execute(
        update(DeliveryAttempt)
        .where(DeliveryAttempt.id == attempt_id, DeliveryAttempt.send_started_at.is_(None))
        .values(send_started_at=stamp)
        .execution_options(synchronize_session=False))
    return stamp if int(result.rowcount) == 1 else None  # type: ignore[attr-defined]


def record(session: Session, attempt_id: uuid.UUID, values: dict[str, Any], *,
           claimed_at: datetime | None = None) -> bool:
    """Write an attempt's result. With `claimed_at`, only while the claim is still ours
    (nobody re-claimed it as interrupted since); False when it is not."""
    query = update(DeliveryAttempt).where(DeliveryAttempt.id == attempt_id)
    if claimed_at is not None:
        query = query.where(DeliveryAttempt.send_started_at == claimed_at,
                            DeliveryAttempt.status == "QUEUED")
    result = session.execute(query.values(**values)
                             .execution_options(synchronize_session=False))
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def interrupted_resends(session: Session, *, older_than_seconds: float,
                        limit: int) -> list[DeliveryAttempt]:
    """Manual resends a worker started sending more than `older_than_seconds` ago (by the
    database's clock) and never finished: the worker died (a live one finishes within the
    provider deadline)."""
    return list(session.scalars(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.run_id.is_(None), DeliveryAttempt.status == "QUEUED",
               DeliveryAttempt.send_started_at.is_not(None),
               DeliveryAttempt.send_started_at
               < dialect.now(session, plus_seconds=-older_than_seconds))
        .order_by(DeliveryAttempt.send_started_at).limit(limit)))


def reclaim(session: Session, attempt_id: uuid.UUID, *,
            previous: datetime) -> datetime | None:
    """Take over an interrupted send: the new claim's stamp (the database's clock), or
    None if another worker already did (or the send ended)."""
    stamp = dialect.current_time(session)
    result = session.execute(
        update(DeliveryAttempt)
        .where(DeliveryAttempt.id == attempt_id, DeliveryAttempt.status == "QUEUED",
               DeliveryAttempt.send_started_at == previous)
        .values(send_started_at=stamp)
        .execution_options(synchronize_session=False))
    return stamp if int(result.rowcount) == 1 else None  # type: ignore[attr-defined]
