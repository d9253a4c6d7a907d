"""Per-contact frequency caps: a workspace's caps, the daily counts, and each message's slot."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from relayflow.storage.models import FrequencyCap, FrequencyCount, FrequencyReservation


def get_or_none(session: Session, workspace_id: uuid.UUID) -> FrequencyCap | None:
    return session.scalar(select(FrequencyCap).where(FrequencyCap.workspace_id == workspace_id))


def caps(session: Session, workspace_id: uuid.UUID) -> dict[str, int]:
    """The workspace's caps by channel (empty: nothing is capped)."""
    row = get_or_none(session, workspace_id)
    return {str(k): int(v) for k, v in (row.caps if row is not None else {}).items()}


def add(session: Session, setting: FrequencyCap) -> None:
    session.add(setting)
    session.flush()


def _insert(session: Session) -> Any:
    """The INSERT construct that knows ON CONFLICT (the only dialect-specific part)."""
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def take_slot(session: Session, *, key: uuid.UUID, workspace_id: uuid.UUID,
              contact_id: uuid.UUID, channel: str, day: date, cap: int | None,
              now: datetime) -> bool:
    """Count message `key` against its contact's channel on `day`, unless `cap` is reached.

    True when the message holds a slot: it took one now, or it already held one (a retry, or
    a recovery after a crash, counts once). False when `cap` messages were already counted;
    nothing changes then. `cap` None counts without limit.

    The reservation row is inserted first (ON CONFLICT DO NOTHING): a message that already
    has one is done. Then one conditional upsert adds to the count only while it is below
    the cap: on PostgreSQL a racing upsert waits for the row lock and re-checks the
    condition on the committed count, and on SQLite BEGIN IMMEDIATE serialises the writers,
    so however many workers race for the last slot, one gets it.
    """
    insert = _insert(session)
    reserved = session.execute(
        insert(FrequencyReservation)
        .values(key=key, workspace_id=workspace_id, contact_id=contact_id, channel=channel,
                day=day, created_at=now)
        .on_conflict_do_nothing(index_elements=[FrequencyReservation.key])
        .returning(FrequencyReservation.key)).scalar_one_or_none()
    if reserved is None:
        return True
    statement = insert(FrequencyCount).values(
        workspace_id=workspace_id, contact_id=contact_id, channel=channel, day=day, count=1)
    statement = statement.on_conflict_do_update(
        index_elements=[FrequencyCount.workspace_id, FrequencyCount.contact_id,
                        FrequencyCount.channel, FrequencyCount.day],
        set_={"count": FrequencyCount.count + 1},
        where=None if cap is None else FrequencyCount.count < cap,
    ).returning(FrequencyCount.count)
    if session.execute(statement).scalar_one_or_none() is not None:
        return True
    session.execute(delete(FrequencyReservation).where(FrequencyReservation.key == key))
    return False


def count(session: Session, *, workspace_id: uuid.UUID, contact_id: uuid.UUID, channel: str,
          day: date) -> int:
    """How many messages are counted for the contact's channel on `day`."""
    value = session.scalar(select(FrequencyCount.count).where(
        FrequencyCount.workspace_id == workspace_id, FrequencyCount.contact_id == contact_id,
        FrequencyCount.channel == channel, FrequencyCount.day == day))
    return int(value or 0)


def delete_before(session: Session, day: date) -> int:
    """Forget counts and slots of days before `day` (only today's are ever read)."""
    session.execute(delete(FrequencyReservation).where(FrequencyReservation.day < day))
    result = session.execute(delete(FrequencyCount).where(FrequencyCount.day < day))
    return int(getattr(result, "rowcount", 0) or 0)
