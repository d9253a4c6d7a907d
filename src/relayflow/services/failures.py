"""Failures grouped by cause (DESIGN §8.1).

Each failure is named when it happens: a FAILED run by where it failed and its class of
error, a FAILED or BOUNCED delivery attempt by where it was sent from, its provider and
the provider's code; both with the error's pattern (engine.fingerprint). The run or
attempt keeps the fingerprint; the cause is described once, in failure_groups, by the
first failure of it. The groups are then read back from the failures themselves: counts,
first and last seen and the sparkline follow what retention keeps (the counts by hour
from a rollup of them that retention keeps in step).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from relayflow.engine import fingerprint
from relayflow.errors import InvalidInput
from relayflow.services import paging
from relayflow.services.run import time_window
from relayflow.storage.models import DeliveryAttempt, FailureGroup, RunStep, Workflow
from relayflow.storage.repositories import failure as failure_repo
from relayflow.storage.repositories import workflow as workflow_repo
from relayflow.storage.types import fit, storable

KINDS = ("run", "delivery")
_GROUPS = cast(Table, FailureGroup.__table__)
BUCKETS = 30  # a sparkline has about this many bars, and at most one more
ALL_TIME = timedelta(days=3660)  # "from" alone, or "to" alone: ten years back at most
MAX_ERROR = 2000  # characters of a sample error kept


@dataclass(frozen=True, slots=True)
class Named:
    """A failure's fingerprint, and its group's row should it be the first of its cause."""

    fingerprint: str
    group: dict[str, Any]


def of_run(*, workspace_id: uuid.UUID, workflow_id: uuid.UUID, workflow_key: str,
           node_id: str, node_type: str, error_class: str, error: str,
           now: datetime) -> Named:
    name = fingerprint.of_run(workflow=workflow_key, node_id=node_id, node_type=node_type,
                              error_class=error_class, error=error)
    return Named(name, _group(workspace_id, name, "run", workflow_id, node_id, node_type,
                              error_class, error, now))


def provider_code(values: Mapping[str, Any]) -> str:
    """The provider's own code for a failed or bounced attempt: `HTTP 503`, `SMTP 550`,
    `bounce hard`; "" when the provider gave none (it was never reached)."""
    response = values.get("provider_response") or {}
    if not isinstance(response, Mapping):
        return ""
    if isinstance(response.get("status"), int):
        return f"HTTP {response['status']}"
    if isinstance(response.get("code"), int):
        return f"SMTP {response['code']}"
    return ""


def of_attempt(*, workspace_id: uuid.UUID, workflow_id: uuid.UUID | None, workflow_key: str,
               node_id: str, channel: str, provider: str, code: str, error: str,
               now: datetime) -> Named:
    name = fingerprint.of_attempt(workflow=workflow_key, node_id=node_id, channel=channel,
                                  provider=provider, code=code, error=error)
    error_class = code or "NoAnswer"
    return Named(name, _group(workspace_id, name, "delivery", workflow_id, node_id,
                              "SEND_MESSAGE", error_class, error, now))


def _group(workspace_id: uuid.UUID, name: str, kind: str, workflow_id: uuid.UUID | None,
           node_id: str, node_type: str, error_class: str, error: str,
           now: datetime) -> dict[str, Any]:
    return {"workspace_id": workspace_id, "fingerprint": name, "kind": kind,
            "workflow_id": workflow_id, "node_id": node_id, "node_type": node_type,
            "error_class": error_class[:64], "pattern": fingerprint.pattern(error),
            "sample_error": error[:MAX_ERROR], "created_at": now}


# --- reading the groups ---------------------------------------------------------------


def describe(session: Session, *, workspace_id: uuid.UUID,
             fingerprint: str) -> FailureGroup | None:
    """One cause as its first failure described it; None for a fingerprint unknown here."""
    return session.get(FailureGroup, (workspace_id, fingerprint.strip().lower()))


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureQuery:
    kind: str | None = None  # None: both
    workflow: str | None = None
    range: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


@dataclass(frozen=True, slots=True)
class Bars:
    """A sparkline's bars: `count` of `width` each from `origin`, the first and the last
    cut by the range."""

    origin: datetime
    width: timedelta
    count: int


@dataclass(frozen=True, slots=True)
class FailurePage:
    groups: list[failure_repo.Group]
    next_cursor: str | None
    start: datetime
    end: datetime
    bars: Bars


_HOUR = 3600


def bars(start: datetime, end: datetime) -> Bars:
    """The bars of a sparkline over [start, end): the fewest whole hours each that keep
    them to BUCKETS over the range, on multiples of that since 1970 (UTC), so that a bar
    is a whole number of the hours the rollup counts: a day from midnight UTC for 30
    days, six hours for 7 days, an hour for 24 hours. The range rarely starts on one, so
    its two ends are usually parts of bars: BUCKETS + 1 at most."""
    span = max(end.timestamp() - start.timestamp(), 1.0)
    width = math.ceil(math.ceil(span / _HOUR) / BUCKETS) * _HOUR
    first = int(start.timestamp()) // width * width
    last = (math.ceil(end.timestamp()) - 1) // width * width
    return Bars(datetime.fromtimestamp(first, UTC), timedelta(seconds=width),
                max(1, (last - first) // width + 1))


def window(query: FailureQuery, now: datetime) -> tuple[datetime, datetime]:
    """The range the groups are counted over: 7 days back unless asked otherwise."""
    default = None if query.range or query.created_from or query.created_to else "7d"
    start, end = time_window(range_=query.range or default, created_from=query.created_from,
                             created_to=query.created_to, now=now)
    end = now if end is None else min(end, now)
    start = end - ALL_TIME if start is None else start
    if start >= end:
        raise InvalidInput("from must be earlier than to, and than now")
    return start, end


def search(session: Session, *, workspace_id: uuid.UUID, query: FailureQuery, limit: int = 50,
           cursor: str | None = None, now: datetime) -> FailurePage:
    """One page of failure groups, most recently seen first."""
    paging.check_limit(limit)
    if query.kind is not None and query.kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}")
    after = paging.decode_at(cursor) if cursor else None
    start, end = window(query, now)
    sparkline = bars(start, end)
    workflow_id = None
    if query.workflow:
        workflow = workflow_repo.get_by_key(session, workspace_id, query.workflow)
        if workflow is None:
            return FailurePage([], None, start, end, sparkline)
        workflow_id = workflow.id
    kinds = (query.kind,) if query.kind else KINDS
    groups = failure_repo.groups(session, workspace_id=workspace_id, kinds=kinds,
                                 workflow_id=workflow_id, start=start, end=end,
                                 origin=sparkline.origin, bucket=sparkline.width,
                                 buckets=sparkline.count)
    groups.sort(key=_position, reverse=True)
    if after is not None:
        groups = [g for g in groups if _position(g) < after]
    next_cursor = None
    if len(groups) > limit:
        groups = groups[:limit]
        next_cursor = paging.encode_at(*_position(groups[-1]))
    return FailurePage(groups, next_cursor, start, end, sparkline)


def _position(group: failure_repo.Group) -> tuple[datetime, uuid.UUID]:
    """A group's place in the order: last seen, then its fingerprint (16 hexadecimal
    digits, padded to a UUID for the cursor)."""
    assert group.last_seen is not None  # a group is listed for its failures
    return group.last_seen, uuid.UUID(group.fingerprint.rjust(32, "0"))


def name_attempt(session: Session, attempt: DeliveryAttempt, values: dict[str, Any],
                 now: datetime, *, code: str | None = None) -> dict[str, Any]:
    """`values` (a FAILED or BOUNCED attempt's final fields) with its fingerprint, its
    cause described: for the attempts written outside a run's walk (resends, a provider's
    bounce callback). `code` is the provider's, when not in its answer (a bounce's kind)."""
    key = session.scalar(select(Workflow.key).where(Workflow.id == attempt.workflow_id)) \
        if attempt.workflow_id is not None else None
    node_id = session.scalar(select(RunStep.node_id).where(
        RunStep.run_id == attempt.run_id, RunStep.seq == attempt.step_seq)) \
        if attempt.run_id is not None and attempt.step_seq is not None else None
    merged = {"provider_response": attempt.provider_response, "error": attempt.error,
              **values}
    named = of_attempt(workspace_id=attempt.workspace_id, workflow_id=attempt.workflow_id,
                       workflow_key=key or "", node_id=node_id or "",
                       channel=attempt.channel, provider=attempt.provider,
                       code=provider_code(merged) if code is None else code,
                       error=str(merged.get("error") or ""), now=now)
    failure_repo.describe(session, [fit(_GROUPS, storable(named.group))])
    return {**values, "fingerprint": named.fingerprint}
