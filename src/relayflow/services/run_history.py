"""What the run history page needs beyond the API's listing: paging both ways from a
cursor, run volume per time bucket for the chart, and the rows of a CSV export."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo

from sqlalchemy.orm import Session, sessionmaker

from relayflow.services import export, paging
from relayflow.services.run import (
    CHIPS,
    RANGES,
    RunQuery,
    build_filter,
    chip_counts,
    decode_cursor,
    encode_cursor,
    time_window,
)
from relayflow.storage.db import session_scope
from relayflow.storage.repositories import rollup
from relayflow.storage.repositories import run as run_repo
from relayflow.storage.repositories.run import ExportRow, RunFilter, RunRow

# A cursor starting with this walks toward newer runs (a "Newer" link); any other cursor
# is an API `next_cursor` and walks toward older ones. "." is not in base64's URL alphabet.
NEWER = "n."
# Chart buckets: (longest window, bucket width), so a chart keeps to about 24 to 62 bars.
BUCKETS = (
    (timedelta(days=2), timedelta(hours=1)),
    (timedelta(days=8), timedelta(hours=6)),
    (timedelta(days=62), timedelta(days=1)),
    (timedelta(days=434), timedelta(days=7)),
)
LONG_BUCKET = timedelta(days=30)
_MONDAY = 4 * 86400  # 1970-01-05, the first Monday after the epoch: weeks start on Mondays


@dataclass(frozen=True, slots=True, kw_only=True)
class Volume:
    """Runs per bucket of the window, by chip status (RUNNING includes PENDING)."""

    start: datetime
    end: datetime
    size: timedelta
    buckets: list[tuple[datetime, dict[str, int]]]

    def totals(self) -> dict[str, int]:
        return {chip: sum(counts[chip] for _, counts in self.buckets) for chip in CHIPS}


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    """What sits above the run table: chip counts and volume (both ignore the status)."""

    counts: dict[str, int]
    volume: Volume
    any_runs: bool  # whether the workspace has any run at all (which empty state to show)


@dataclass(frozen=True, slots=True, kw_only=True)
class History:
    rows: list[RunRow]
    older_cursor: str | None
    newer_cursor: str | None  # None with at_top False: "Newer" goes to the first page
    at_top: bool  # nothing newer: "Newer" is disabled
    summary: Summary


def _key(row: RunRow) -> tuple[datetime, uuid.UUID]:
    return row.run.created_at, row.run.id


def newer_cursor(row: RunRow) -> str:
    return NEWER + encode_cursor(*_key(row))


def parse_page_cursor(cursor: str | None) -> tuple[bool, tuple[datetime, uuid.UUID] | None]:
    """(toward newer?, position) of a page cursor; InvalidInput when it is malformed."""
    if not cursor:
        return False, None
    if cursor.startswith(NEWER):
        return True, decode_cursor(cursor[len(NEWER):])
    return False, decode_cursor(cursor)


def _keyset_page(
    session: Session, f: RunFilter, *, limit: int, cursor: str | None
) -> tuple[list[RunRow], str | None, str | None, bool]:
    """(rows newest first, older cursor, newer cursor, at top). A "Newer" page is read
    oldest first from its cursor and flipped; with less than a page left above it, the
    first page is shown instead, so "Newer" always ends on the page that starts at the top."""
    toward_newer, position = parse_page_cursor(cursor)
    if toward_newer and position is not None:
        above = run_repo.list_newer(session, f, limit=limit + 1, after=position)
        if len(above) > limit:
            rows = above[:limit][::-1]
            older = bool(run_repo.list_page(session, f, limit=1, before=_key(rows[-1])))
            return (rows, encode_cursor(*_key(rows[-1])) if older else None,
                    newer_cursor(rows[0]), False)
        position = None
    found = run_repo.list_page(session, f, limit=limit + 1, before=position)
    rows = found[:limit]
    older_cursor = encode_cursor(*_key(rows[-1])) if len(found) > limit else None
    if position is None:
        return rows, older_cursor, None, True
    if not rows:
        return rows, None, None, False
    newer = bool(run_repo.list_newer(session, f, limit=1, after=_key(rows[0])))
    return rows, older_cursor, newer_cursor(rows[0]) if newer else None, not newer


def _bucket_size(span: timedelta) -> timedelta:
    return next((size for longest, size in BUCKETS if span <= longest), LONG_BUCKET)


def _offset(zone: tzinfo, at: int) -> int:
    offset = datetime.fromtimestamp(at, zone).utcoffset()
    return int(offset.total_seconds()) if offset else 0


def zone_offsets(zone: tzinfo, start: datetime, end: datetime) -> list[tuple[int, int]]:
    """(from epoch second, UTC offset) for each offset the zone has from start to end:
    one pair, plus one per daylight saving change (found a day at a time, then bisected)."""
    t, stop = int(start.timestamp()), int(end.timestamp()) + 1
    out = [(t, _offset(zone, t))]
    while t < stop:
        step = min(t + 86400, stop)
        if _offset(zone, step) != out[-1][1]:
            low, high = t, step
            while high - low > 1:
                mid = (low + high) // 2
                low, high = (mid, high) if _offset(zone, mid) == out[-1][1] else (low, mid)
            out.append((high, _offset(zone, high)))
        t = step
    return out


def _from_wall(seconds: int, zone: tzinfo) -> tuple[datetime, bool]:
    """A wall-clock time (seconds since 1970-01-01 00:00 in the zone) as UTC, and whether
    that wall-clock time exists (not skipped by a daylight saving change)."""
    naive = datetime(1970, 1, 1) + timedelta(seconds=seconds)
    at = naive.replace(tzinfo=zone).astimezone(UTC)
    return at, at.astimezone(zone).replace(tzinfo=None) == naive


def volume(
    session: Session, run_filter: RunFilter | None, *, start: datetime, end: datetime,
    zone: tzinfo = UTC, open_end: bool = False,
) -> Volume:
    """Runs per bucket from `start` to before `end` (up to and including it when the window
    is open, ending now). Buckets follow the zone's wall clock: days start at its midnight
    (also across a daylight saving change), weeks on Monday. One GROUP BY counts them."""
    size = _bucket_size(end - start)
    seconds = int(size.total_seconds())
    offsets = zone_offsets(zone, start, end)
    origin = _MONDAY if size == timedelta(days=7) else 0
    first_wall = int(start.timestamp()) + offsets[0][1]
    last_wall = end.timestamp() + offsets[-1][1] + (1 if open_end else 0)
    first = (first_wall - origin) // seconds * seconds + origin
    edges = range(first, math.ceil(last_wall), seconds) or range(first, first + 1)
    counts: dict[int, dict[str, int]] = {at: dict.fromkeys(CHIPS, 0) for at in edges}
    if run_filter is not None:
        status_chip = {s: chip for chip, statuses in CHIPS.items() for s in statuses}
        rows = run_repo.count_by_bucket(session, replace(run_filter, statuses=()),
                                        size_seconds=seconds, origin=origin, offsets=offsets)
        for wall, status, n in rows:
            if wall in counts and status in status_chip:
                counts[wall][status_chip[status]] += n
    buckets = []
    for wall, bucket_counts in counts.items():
        at, exists = _from_wall(wall, zone)
        if exists or any(bucket_counts.values()):
            buckets.append((at, bucket_counts))
    return Volume(start=start, end=end, size=size, buckets=buckets)


def _chart_window(
    session: Session, run_filter: RunFilter | None, start: datetime | None,
    end: datetime | None, now: datetime,
) -> tuple[datetime, datetime]:
    """A window without a start begins at the filter's oldest run (30 days when none)."""
    end = end or now
    if start is None:
        oldest = run_repo.list_newer(session, run_filter, limit=1) if run_filter else []
        start = oldest[0].run.created_at if oldest else end - RANGES["30d"]
    return start, max(end, start)


def _summary(
    session: Session, run_filter: RunFilter | None, *, workspace_id: uuid.UUID,
    query: RunQuery, now: datetime, zone: tzinfo,
) -> Summary:
    start, end = time_window(range_=query.range, created_from=query.created_from,
                             created_to=query.created_to, now=now)
    counts = chip_counts(session, run_filter)
    first, last = _chart_window(session, run_filter, start, end, now)
    chart = volume(session, run_filter, start=first, end=last, zone=zone, open_end=end is None)
    any_runs = counts["ALL"] > 0 or bool(
        run_repo.list_page(session, RunFilter(workspace_id=workspace_id), limit=1))
    return Summary(counts=counts, volume=chart, any_runs=any_runs)


def summary(
    session: Session, *, workspace_id: uuid.UUID, query: RunQuery, now: datetime,
    phone_region: str | None = None, zone: tzinfo = UTC,
) -> Summary:
    """The chip counts and run volume alone (what the page refreshes while it is open)."""
    run_filter = build_filter(session, workspace_id=workspace_id, query=query, now=now,
                              phone_region=phone_region)
    return _summary(session, run_filter, workspace_id=workspace_id, query=query, now=now,
                    zone=zone)


def history(
    session: Session, *, workspace_id: uuid.UUID, query: RunQuery, limit: int = 50,
    cursor: str | None = None, now: datetime, phone_region: str | None = None,
    zone: tzinfo = UTC,
) -> History:
    """What the run history page shows: a page of runs either way from `cursor`, with the
    chip counts and the run volume over the window."""
    paging.check_limit(limit)
    parse_page_cursor(cursor)  # a bad cursor is an error even when the filter matches nothing
    run_filter = build_filter(session, workspace_id=workspace_id, query=query, now=now,
                              phone_region=phone_region)
    above = _summary(session, run_filter, workspace_id=workspace_id, query=query, now=now,
                     zone=zone)
    if run_filter is None:
        return History(rows=[], older_cursor=None, newer_cursor=None, at_top=True,
                       summary=above)
    rows, older, newer, at_top = _keyset_page(session, run_filter, limit=limit, cursor=cursor)
    # One more query for the page, not one per row: the newest retry of each finished run.
    rows = run_repo.with_latest_retries(session, workspace_id, rows)
    return History(rows=rows, older_cursor=older, newer_cursor=newer, at_top=at_top,
                   summary=above)


def fold_counts(sessions: sessionmaker[Session]) -> int:
    """Fold the count changes written since the last fold into the hourly rollups (see
    storage/repositories/rollup.py), in one short transaction; how many there were. Counts
    are exact without it; it keeps what a count reads small."""
    with session_scope(sessions) as session:
        return rollup.fold(session)


def vacuum_counts(sessions: sessionmaker[Session]) -> None:
    """Reclaim the space of folded changes (PostgreSQL; see rollup.vacuum)."""
    rollup.vacuum(sessions.kw["bind"])


def export_rows(
    sessions: sessionmaker[Session], *, run_filter: RunFilter | None, page_size: int = 5000
) -> Iterator[ExportRow]:
    """Every run the filter matches as export values (run_repo.export_page), newest first,
    a keyset page at a time (export.keyset_rows)."""
    if run_filter is None:
        return iter(())
    return export.keyset_rows(
        sessions,
        lambda session, before: run_repo.export_page(session, run_filter, limit=page_size,
                                                     before=before),
        position_of=lambda row: (datetime.fromisoformat(row[7]), uuid.UUID(row[0])),
        page_size=page_size)
