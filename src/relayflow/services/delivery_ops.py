"""Delivery ops: listing delivery attempts with filters and counts, and one attempt in full
with its chain of retries and resends and the run step that made it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from relayflow.engine.status import DeliveryStatus
from relayflow.errors import InvalidInput, NotFound
from relayflow.services import export, paging
from relayflow.services import run as run_service
from relayflow.storage.ids import parse_id
from relayflow.storage.models import DeliveryAttempt, RunStep
from relayflow.storage.repositories import delivery as delivery_repo
from relayflow.storage.repositories import provider_config as provider_repo
from relayflow.storage.repositories.delivery import DeliveryFilter, DeliveryRow, ExportRow
from relayflow.storage.repositories.run import RunRow

STATUSES = tuple(DeliveryStatus)
CHANNELS = ("email", "sms")
MAX_PAGE = paging.MAX_PAGE
# A chain is a handful of retries and resends; this only bounds a corrupt, looping one.
_MAX_CHAIN_ROUNDS = 50


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryQuery:
    """What GET /deliveries asks for, as typed by a person: every field optional."""

    status: str | None = None
    channel: str | None = None
    workflow: str | None = None
    contact: str | None = None
    range: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    fingerprint: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    rows: list[DeliveryRow]
    next_cursor: str | None
    counts: dict[str, int] = field(default_factory=dict)


def parse_statuses(text: str | None) -> tuple[str, ...]:
    """`"sent,failed"` -> `("SENT", "FAILED")`; empty means every status."""
    wanted = tuple(dict.fromkeys(p.strip().upper() for p in (text or "").split(",") if p.strip()))
    unknown = [s for s in wanted if s not in STATUSES]
    if unknown:
        raise InvalidInput(
            f"unknown delivery status {', '.join(unknown)}; use {', '.join(STATUSES)}")
    return wanted


def build_filter(
    session: Session, *, workspace_id: uuid.UUID, query: DeliveryQuery, now: datetime,
    phone_region: str | None = None,
) -> DeliveryFilter | None:
    """The filter for a listing; None when it can match nothing (an unknown workflow key,
    an address no contact has). Malformed input is an error even then."""
    statuses = parse_statuses(query.status)
    fingerprint = run_service.parse_fingerprint(query.fingerprint)
    channel = query.channel.strip().lower() if query.channel and query.channel.strip() else None
    if channel is not None and channel not in CHANNELS:
        raise InvalidInput(f"channel must be one of {', '.join(CHANNELS)}")
    start, end = run_service.time_window(range_=query.range, created_from=query.created_from,
                                         created_to=query.created_to, now=now)
    scope = run_service.resolve_scope(session, workspace_id=workspace_id, contact=query.contact,
                                      workflow=query.workflow, phone_region=phone_region)
    if scope is None:
        return None
    return DeliveryFilter(workspace_id=workspace_id, statuses=statuses, channel=channel,
                          workflow_id=scope.workflow_id, contact_id=scope.contact_id,
                          created_from=start, created_to=end, fingerprint=fingerprint)


def status_counts(session: Session, delivery_filter: DeliveryFilter | None) -> dict[str, int]:
    """`{ALL, QUEUED, SENT, ...}` under every filter but the status."""
    by_status = ({} if delivery_filter is None else
                 delivery_repo.count_by_status(session, replace(delivery_filter, statuses=())))
    return {"ALL": sum(by_status.values()), **{s: by_status.get(s, 0) for s in STATUSES}}


def search(
    session: Session, *, workspace_id: uuid.UUID, query: DeliveryQuery | None = None,
    limit: int = 50, cursor: str | None = None, now: datetime,
    phone_region: str | None = None,
) -> DeliveryPage:
    """One page of attempts, newest first, with the per-status counts."""
    paging.check_limit(limit)
    before = paging.decode_at(cursor) if cursor else None  # bad cursor: error even if empty
    delivery_filter = build_filter(session, workspace_id=workspace_id,
                                   query=query or DeliveryQuery(), now=now,
                                   phone_region=phone_region)
    counts = status_counts(session, delivery_filter)
    if delivery_filter is None:
        return DeliveryPage([], None, counts)
    rows = delivery_repo.list_page(session, delivery_filter, limit=limit + 1, before=before)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1].attempt
        next_cursor = paging.encode_at(last.created_at, last.id)
    return DeliveryPage(rows, next_cursor, counts)


def export_rows(
    sessions: sessionmaker[Session], *, delivery_filter: DeliveryFilter | None,
    page_size: int = 5000,
) -> Iterator[ExportRow]:
    """Every attempt the filter matches as export values (delivery_repo.export_page),
    newest first, a keyset page at a time (export.keyset_rows)."""
    if delivery_filter is None:
        return iter(())
    return export.keyset_rows(
        sessions,
        lambda session, before: delivery_repo.export_page(
            session, delivery_filter, limit=page_size, before=before),
        position_of=lambda row: (datetime.fromisoformat(row[13]), uuid.UUID(row[0])),
        page_size=page_size)


# --- one attempt --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainLink:
    attempt: DeliveryAttempt
    relation: str  # "self", "retry", "resend" or "original" (see chain())


@dataclass(frozen=True, slots=True)
class Detail:
    row: DeliveryRow
    chain: list[ChainLink]
    run: RunRow | None
    step: RunStep | None


def _relation(attempt: DeliveryAttempt, asked: uuid.UUID) -> str:
    if attempt.id == asked:
        return "self"
    if attempt.resend_of is not None:
        return "resend"
    if attempt.retry_of is not None:
        return "retry"
    return "original"


def chain(session: Session, *, workspace_id: uuid.UUID, attempt: DeliveryAttempt) -> list[
    ChainLink
]:
    """Every attempt reachable through `retry_of` / `resend_of`, either way, oldest first.

    Each link says what that attempt is: the one asked for (self), a retry after a transient
    failure, a manual resend, or the original first attempt the others descend from."""
    found = {attempt.id: attempt}
    frontier = [attempt]
    for _ in range(_MAX_CHAIN_ROUNDS):
        fresh = [a for a in delivery_repo.linked(session, workspace_id, frontier)
                 if a.id not in found]
        if not fresh:
            break
        found.update((a.id, a) for a in fresh)
        frontier = fresh
    ordered = sorted(found.values(), key=lambda a: (a.created_at, a.attempt_number, a.id))
    return [ChainLink(a, _relation(a, attempt.id)) for a in ordered]


def detail(session: Session, *, workspace_id: uuid.UUID, attempt_id: str) -> Detail:
    """An attempt with its run and step (one query), and its chain of retries and resends
    (one query a link deep, and one more that finds no further link: two in all for an
    attempt that was never retried or resent)."""
    parsed = parse_id(attempt_id)
    found = delivery_repo.get_with_run(session, workspace_id, parsed) if parsed else None
    if found is None:
        raise NotFound(f"no delivery attempt {attempt_id} in this workspace")
    row, run, step = found
    return Detail(row, chain(session, workspace_id=workspace_id, attempt=row.attempt), run,
                  step)


# --- for the delivery ops pages -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BrowsePage:
    """A page of attempts that can be left both ways: `older_cursor` continues with older
    attempts (`cursor=`), `newer_cursor` goes back towards the newest (`after=`)."""

    rows: list[DeliveryRow]
    counts: dict[str, int]
    older_cursor: str | None
    newer_cursor: str | None


def _cursor_of(row: DeliveryRow) -> str:
    return paging.encode_at(row.attempt.created_at, row.attempt.id)


def browse(
    session: Session, *, workspace_id: uuid.UUID, query: DeliveryQuery | None = None,
    limit: int = 50, cursor: str | None = None, after: str | None = None, now: datetime,
    phone_region: str | None = None,
) -> BrowsePage:
    """Like `search`, plus the way back: `after` (a cursor) gives the attempts just newer
    than it. Both are keyset; neither counts past rows."""
    if cursor and after:
        raise InvalidInput("give cursor (older) or after (newer), not both")
    if not after:
        page = search(session, workspace_id=workspace_id, query=query, limit=limit,
                      cursor=cursor, now=now, phone_region=phone_region)
        newer = _cursor_of(page.rows[0]) if cursor and page.rows else None
        return BrowsePage(page.rows, page.counts, page.next_cursor, newer)
    paging.check_limit(limit)
    since = paging.decode_at(after)
    delivery_filter = build_filter(session, workspace_id=workspace_id,
                                   query=query or DeliveryQuery(), now=now,
                                   phone_region=phone_region)
    counts = status_counts(session, delivery_filter)
    if delivery_filter is None:
        return BrowsePage([], counts, None, None)
    rows = delivery_repo.list_page_newer(session, delivery_filter, limit=limit + 1,
                                         after=since)
    more_newer = len(rows) > limit
    rows = rows[-limit:] if more_newer else rows
    return BrowsePage(rows, counts, _cursor_of(rows[-1]) if rows else None,
                      _cursor_of(rows[0]) if more_newer else None)


def suppression_of(session: Session, *, attempt: DeliveryAttempt) -> str | None:
    """Why the attempt's contact gets nothing on its channel now (unsubscribed, bounced,
    complained), or None: a resend then needs the override."""
    reason = provider_repo.suppressed(session, attempt.contact_id).get(attempt.channel)
    return str(reason) if reason else None
