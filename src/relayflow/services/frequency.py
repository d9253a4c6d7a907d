"""Per-contact frequency caps: at most N messages per channel per contact per UTC day.

A workspace sets a cap per channel (`{"email": 3, "sms": 2}`; a channel not named is not
capped). A run's message takes a slot in its contact's count for the day just before it is
sent; when the cap is reached the attempt is SUPPRESSED (`suppressed_by` "frequency_cap")
and the run goes on as for any suppression. The slot belongs to the message (its run step),
so a retry after a transient failure or a recovery after a crash never counts it twice.
A manual resend is counted but never refused: the operator asked for that message
explicitly. Counts are kept only for capped channels.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from relayflow.delivery.config import CHANNEL_TYPES
from relayflow.errors import InvalidInput
from relayflow.services import workspace as workspace_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import FrequencyCap
from relayflow.storage.repositories import frequency as frequency_repo

CHANNELS = tuple(CHANNEL_TYPES)
MAX_CAP = 10_000
SUPPRESSED_BY = "frequency_cap"


class InvalidFrequencyCaps(InvalidInput):
    """The frequency caps are invalid."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"The frequency caps have {len(problems)} problem"
                         f"{'' if len(problems) == 1 else 's'}.")

    def extra(self) -> dict[str, Any]:
        return {"problems": list(self.problems)}


@dataclass(frozen=True, slots=True)
class CapReached:
    """A message refused because its contact already got `cap` on `channel` today."""

    channel: str
    cap: int

    @property
    def error(self) -> str:
        plural = "message" if self.cap == 1 else "messages"
        return (f"not sent: frequency cap, {self.cap} {self.channel} {plural} per day to "
                "this contact reached")


def day_of(now: datetime) -> date:
    """The UTC day a message counts on."""
    return (now if now.tzinfo is None else now.astimezone(UTC)).date()


def validated(caps: Any) -> dict[str, int]:
    """`caps` checked: known channels only, each an integer 1..MAX_CAP or null (no cap)."""
    if not isinstance(caps, dict):
        raise InvalidFrequencyCaps(["an object of channel: most messages per contact per day"])
    problems, stored = [], {}
    for channel, cap in caps.items():
        if channel not in CHANNELS:
            problems.append(f"{channel}: unknown channel (one of {', '.join(CHANNELS)})")
        elif cap is None:
            continue
        elif isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= MAX_CAP:
            problems.append(f"{channel}: an integer from 1 to {MAX_CAP}, or null for no cap")
        else:
            stored[channel] = cap
    if problems:
        raise InvalidFrequencyCaps(problems)
    return {channel: stored[channel] for channel in CHANNELS if channel in stored}


def show(session: Session, *, workspace_id: uuid.UUID) -> dict[str, int]:
    """The workspace's caps by channel (empty until set: nothing is capped)."""
    return frequency_repo.caps(session, workspace_id)


def put(session: Session, *, workspace_id: uuid.UUID, caps: Any, now: datetime,
        actor: str = "system") -> dict[str, int]:
    """Validate and replace the workspace's caps; returns them as stored."""
    stored = validated(caps)
    row = frequency_repo.get_or_none(session, workspace_id)
    if row is None:
        frequency_repo.add(session, FrequencyCap(workspace_id=workspace_id, caps=stored,
                                                 updated_at=now))
    else:
        row.caps = stored
        row.updated_at = now
    workspace_service.audit(session, workspace_id=workspace_id, actor=actor,
                            action="frequency.set", target_type="frequency",
                            target_id="caps", now=now, detail={"caps": stored})
    return stored


def reserve(runtime: Runtime, *, workspace_id: uuid.UUID, contact_id: uuid.UUID | None,
            channel: str, key: uuid.UUID, capped: bool = True) -> CapReached | None:
    """Take message `key`'s slot for today, in a transaction of its own; the refusal when
    the contact's cap on `channel` is reached (None: send it).

    Committed before the fenced "sending now", so a worker that dies in between leaves the
    slot to the same message's recovery. `capped` False counts without refusing (a manual
    resend). A message with no contact, or on an uncapped channel, is not counted.
    """
    if contact_id is None:
        return None
    now = runtime.clock()
    with session_scope(runtime.sessions) as session:
        cap = show(session, workspace_id=workspace_id).get(channel)
        if cap is None:
            return None
        taken = frequency_repo.take_slot(
            session, key=key, workspace_id=workspace_id, contact_id=contact_id,
            channel=channel, day=day_of(now), cap=cap if capped else None, now=now)
    return None if taken else CapReached(channel=channel, cap=cap)


def counted(session: Session, *, workspace_id: uuid.UUID, contact_id: uuid.UUID, channel: str,
            now: datetime) -> int:
    """Messages counted today for the contact's channel."""
    return frequency_repo.count(session, workspace_id=workspace_id, contact_id=contact_id,
                                channel=channel, day=day_of(now))


def forget_old(session: Session, *, now: datetime) -> int:
    """Drop counts older than yesterday (kept one day more, for messages retried across
    midnight); returns how many counts went."""
    return frequency_repo.delete_before(session, day_of(now) - timedelta(days=1))
