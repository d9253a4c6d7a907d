"""Pages: run history (/runs), a run's live table row, the live summary and the CSV export.

Every filter lives in the query string, with the names GET /api/v1/runs uses (status,
workflow, contact, range, from, to, cursor, limit), so a view can be bookmarked and shared.
Custom from/to times without a UTC offset are read in the viewer's timezone: `tz` in the
query (the form adds it), else the `rf_tz` cookie static/runs.js keeps, else UTC.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import unquote, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from relayflow.engine.status import CHIPS as STATUSES_OF_CHIP
from relayflow.errors import InvalidInput
from relayflow.services import failures, run_history
from relayflow.services import run as run_service
from relayflow.services import workflow as workflow_service
from relayflow.storage.repositories.run import ExportRow
from relayflow.web.deps import HistorySessionDep, RuntimeDep, SessionDep, SettingsDep
from relayflow.web.pages import chart
from relayflow.web.pages.csv_export import csv_chunks, csv_response, safe_cell
from relayflow.web.pages.deps import ViewerDep
from relayflow.web.pages.templating import render

router = APIRouter()

DEFAULT_RANGE = "30d"
RANGES = (("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days"),
          ("custom", "Custom range"))
CHIPS = (("ALL", "All"), ("RUNNING", "Running"), ("COMPLETED", "Completed"),
         ("FAILED", "Failed"), ("CANCELED", "Canceled"))
ZONE_COOKIE = "rf_tz"
_read_iso = datetime.fromisoformat
LOCAL_INPUT = "%Y-%m-%dT%H:%M"  # what <input type="datetime-local"> shows
CSV_COLUMNS = ("id", "workflow", "version", "contact", "status", "trigger", "created_at",
               "started_at", "finished_at", "duration_ms", "current_node", "error")


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    """The query string as typed. Every link on the page is made from it, so following one
    keeps every other filter."""

    q: str = ""
    status: str = ""
    workflow: str = ""
    contact: str = ""
    range: str = ""
    from_: str = ""
    to: str = ""
    tz: str = ""
    fingerprint: str = ""
    limit: str = ""
    cursor: str = ""

    @classmethod
    def from_request(cls, request: Request) -> Filters:
        q = request.query_params
        # A search is kept whole, so that one too long is refused, not cut (search.py).
        values = {name: (q.get(name.rstrip("_")) or "").strip()[:2000 if name == "q" else 400]
                  for name in cls.__dataclass_fields__}
        return cls(**values)

    @property
    def range_choice(self) -> str:
        if self.range:
            return self.range
        return "custom" if self.from_ or self.to else DEFAULT_RANGE

    @property
    def narrowed(self) -> bool:
        """Whether anything but the default range (and paging) narrows the listing."""
        return bool(self.q or self.status or self.workflow or self.contact
                    or self.fingerprint or self.range_choice != DEFAULT_RANGE)

    def href(self, path: str = "/runs", **changes: str) -> str:
        changed = replace(self, **changes)
        values = asdict(changed)
        if changed.range_choice != "custom":
            values.update(from_="", to="", tz="")  # left over from a custom range
        pairs = [(name.rstrip("_"), value) for name, value in values.items() if value]
        return f"{path}?{urlencode(pairs, safe=',:')}" if pairs else path


def zone_of(name: str) -> tzinfo | None:
    if not name or name.upper() == "UTC":
        return UTC if name else None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def viewer_zone(request: Request, filters: Filters) -> tuple[tzinfo, str]:
    for name in (filters.tz, unquote(request.cookies.get(ZONE_COOKIE, ""))[:100]):
        zone = zone_of(name)
        if zone is not None:
            return zone, str(zone) if zone is not UTC else "UTC"
    return UTC, "UTC"


def _when(text: str, name: str, zone: tzinfo) -> datetime | None:
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text.replace(" ", "T"))
    except ValueError:
        raise InvalidInput(
            f"{name} is not a date and time: {text!r} (use YYYY-MM-DD HH:MM)") from None
    return at.replace(tzinfo=zone) if at.tzinfo is None else at


def _with_offset(text: str, zone: tzinfo) -> str:
    """A custom from/to as read in the viewer's zone, written with its UTC offset (as given
    when it cannot be read: the page says why)."""
    try:
        at = _when(text, "", zone)
    except InvalidInput:
        return text
    return at.isoformat(timespec="minutes") if at is not None else ""


def run_query(filters: Filters, zone: tzinfo) -> run_service.RunQuery:
    choice = filters.range_choice
    if choice != "custom" and choice not in run_service.RANGES:
        raise InvalidInput(f"range must be one of 24h, 7d, 30d or custom, not {choice!r}")
    custom = choice == "custom"
    return run_service.RunQuery(
        status=filters.status or None, workflow=filters.workflow or None,
        contact=filters.contact or None, range=None if custom else choice,
        created_from=_when(filters.from_, "from", zone) if custom else None,
        created_to=_when(filters.to, "to", zone) if custom else None,
        fingerprint=filters.fingerprint or None, q=filters.q or None,
    )


def page_limit(text: str) -> int:
    if not text:
        return 50
    if not text.isdigit() or not 1 <= int(text) <= run_service.MAX_PAGE:
        raise InvalidInput(f"limit must be a whole number from 1 to {run_service.MAX_PAGE}")
    return int(text)


def local_input(text: str, zone: tzinfo) -> str:
    """A from/to value as the datetime-local field shows it, in the viewer's zone."""
    try:
        at = datetime.fromisoformat(text.replace(" ", "T"))
    except ValueError:
        return text
    return (at if at.tzinfo is None else at.astimezone(zone)).strftime(LOCAL_INPUT)


def chips(filters: Filters, counts: dict[str, int]) -> list[dict[str, Any]]:
    try:
        wanted = set(run_service.parse_statuses(filters.status))
    except InvalidInput:
        wanted = {"?"}
    items = []
    for value, label in CHIPS:
        statuses = set(STATUSES_OF_CHIP.get(value, ()))
        status = ",".join(STATUSES_OF_CHIP.get(value, ()))
        items.append({"value": value, "label": label, "count": counts.get(value, 0),
                      "href": filters.href(status=status, cursor=""),
                      "active": wanted == statuses})
    return items


def _base_context(filters: Filters, zone: tzinfo, zone_name: str,
                  workflows: list[Any]) -> dict[str, Any]:
    return {
        "filters": filters, "ranges": RANGES, "range_choice": filters.range_choice,
        "zone_name": zone_name, "workflows": workflows,
        "names": {w.key: w.name for w in workflows},
        "from_value": local_input(filters.from_, zone) if filters.from_ else "",
        "to_value": local_input(filters.to, zone) if filters.to else "",
        "summary_href": filters.href("/runs/-/summary", cursor="", limit=""),
        "csv_href": filters.href("/runs.csv", cursor="", limit=""),
        # A bulk operation reads its filter without the viewer's zone: a custom range goes
        # there with its offset, as the viewer meant it.
        "bulk_href": filters.href("/bulk-operations/new", cursor="", limit="", tz="",
                                  from_=_with_offset(filters.from_, zone),
                                  to=_with_offset(filters.to, zone)),
        "waiting": run_service.waiting,
    }


@router.get("/runs", name="pages:runs")
def runs_page(
    request: Request, viewer: ViewerDep, session: HistorySessionDep, runtime: RuntimeDep,
    settings: SettingsDep,
) -> Response:
    filters = Filters.from_request(request)
    zone, zone_name = viewer_zone(request, filters)
    workflows = workflow_service.list_all(session, workspace_id=viewer.workspace_id)
    ctx = _base_context(filters, zone, zone_name, workflows)
    if filters.fingerprint:
        ctx["cause"] = failures.describe(session, workspace_id=viewer.workspace_id,
                                         fingerprint=filters.fingerprint)
    now = runtime.clock()
    try:
        history = run_history.history(
            session, workspace_id=viewer.workspace_id, query=run_query(filters, zone),
            limit=page_limit(filters.limit), cursor=filters.cursor or None, now=now,
            phone_region=settings.default_phone_region, zone=zone)
    except InvalidInput as exc:
        return render(request, "runs/list.html", {**ctx, "error": exc.detail},
                      status_code=422)
    newer_href = (None if history.at_top
                  else filters.href(cursor=history.newer_cursor or ""))
    older_href = filters.href(cursor=history.older_cursor) if history.older_cursor else None
    return render(request, "runs/list.html", {
        **ctx, "history": history, "now": now, "newer_href": newer_href,
        "older_href": older_href, **_summary_context(filters, history.summary, zone, zone_name),
        "why_href": _why_href(session, viewer.workspace_id, filters,
                              settings.default_phone_region),
    })


def _why_href(session: Session, workspace_id: uuid.UUID, filters: Filters,
              phone_region: str | None) -> str | None:
    """The contact's "Why not?" panel, for the workflow filtered by (if any), when the list
    is filtered by one contact that exists."""
    if not filters.contact:
        return None
    scope = run_service.resolve_scope(session, workspace_id=workspace_id,
                                      contact=filters.contact, workflow=None,
                                      phone_region=phone_region)
    if scope is None or scope.contact_id is None:
        return None
    query = urlencode({"why": filters.workflow}) if filters.workflow else ""
    return f"/contacts/{scope.contact_id}" + (f"?{query}" if query else "") + "#why"


def _summary_context(filters: Filters, summary: run_history.Summary, zone: tzinfo,
                     zone_name: str) -> dict[str, Any]:
    return {"summary": summary, "chips": chips(filters, summary.counts),
            "chart": chart.render_volume(summary.volume, zone=zone, zone_name=zone_name)}


@router.get("/runs/-/summary", name="pages:runs_summary")
def runs_summary(
    request: Request, viewer: ViewerDep, session: HistorySessionDep, runtime: RuntimeDep,
    settings: SettingsDep,
) -> Response:
    """The chips and the chart again, for the page's periodic refresh."""
    filters = Filters.from_request(request)
    zone, zone_name = viewer_zone(request, filters)
    summary = run_history.summary(
        session, workspace_id=viewer.workspace_id, query=run_query(filters, zone),
        now=runtime.clock(), phone_region=settings.default_phone_region, zone=zone)
    return render(request, "runs/_summary.html", {
        **_summary_context(filters, summary, zone, zone_name), "filters": filters,
        "zone_name": zone_name, "summary_href": filters.href("/runs/-/summary", cursor="")})


@router.get("/runs/{run_id}/row", name="pages:run_row")
def run_row(
    run_id: str, request: Request, viewer: ViewerDep, session: SessionDep, runtime: RuntimeDep,
) -> Response:
    """One run's table row, rendered afresh; without data-live-url once it has finished."""
    row = run_service.get_row(session, workspace_id=viewer.workspace_id, run_id=run_id)
    workflow = workflow_service.get(session, workspace_id=viewer.workspace_id,
                                    key=row.workflow_key)
    return render(request, "runs/_row.html", {
        "row": row, "names": {workflow.key: workflow.name}, "now": runtime.clock(),
        "waiting": run_service.waiting})


@router.get("/runs.csv", name="pages:runs_csv")
def runs_csv(
    request: Request, viewer: ViewerDep, session: HistorySessionDep, runtime: RuntimeDep,
    settings: SettingsDep,
) -> Response:
    """Every run the filters match (all pages), streamed as CSV."""
    filters = Filters.from_request(request)
    zone, _ = viewer_zone(request, filters)
    now = runtime.clock()
    run_filter = run_service.build_filter(
        session, workspace_id=viewer.workspace_id, query=run_query(filters, zone), now=now,
        phone_region=settings.default_phone_region)
    rows = run_history.export_rows(request.state.history_sessions, run_filter=run_filter)
    return csv_response(csv_chunks(CSV_COLUMNS, map(csv_record, rows)),
                        filename=f"runs-{viewer.workspace_slug}-{now:%Y%m%d-%H%M%S}.csv")


def csv_record(row: ExportRow) -> tuple[object, ...]:
    """One run's CSV cells. A workflow key and a node id cannot start a formula (they are
    validated against KEY_RE and NODE_ID_RE when saved); an address and an error can."""
    (run_id, key, version, email, phone, status, trigger, created, started, finished, node,
     error) = row
    millis = None if started is None or finished is None else int(
        (_read_iso(finished) - _read_iso(started)).total_seconds() * 1000)
    return (run_id, key, version, safe_cell(email or phone), status, trigger, created, started,
            finished, millis, node, safe_cell(error))
