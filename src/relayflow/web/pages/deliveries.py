"""Pages: Delivery ops — every outbound attempt, filtered, and one attempt in full.

The list takes the filters of GET /api/v1/deliveries under the same names, so a page URL
and an API call say the same thing; `after` (newer than a cursor) is the page's way back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, StreamingResponse
from sqlalchemy.orm import Session
from starlette.datastructures import QueryParams
from starlette.responses import HTMLResponse

from relayflow.errors import Conflict, InvalidInput
from relayflow.services import delivery_ops, failures
from relayflow.services import resend as resend_service
from relayflow.services import workflow as workflow_service
from relayflow.services.login import Viewer
from relayflow.storage.repositories.delivery import ExportRow
from relayflow.web.deps import (
    HistorySessionDep,
    RuntimeDep,
    SessionDep,
    SettingsDep,
    wake_worker_after_commit,
)
from relayflow.web.pages.csv_export import csv_chunks, csv_response, safe_cell
from relayflow.web.pages.deps import FormDep, OperatorDep, ViewerDep
from relayflow.web.pages.templating import render

router = APIRouter()

DEFAULT_RANGE = "30d"
RANGES = {"24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days",
          "all": "Any time", "custom": "Custom…"}
DEFAULT_LIMIT = 50
MAX_REASON = 2000
NOTICES = {"resent": "Resend queued: this is the new attempt. A worker sends it shortly."}
CSV_COLUMNS = ("id", "run_id", "workflow", "contact", "channel", "provider", "status",
               "attempt_number", "subject", "error", "suppressed_by", "provider_message_id",
               "resend_of", "created_at", "sent_at")
# Prepended to a message's HTML inside the sandboxed iframe: nothing is fetched from the
# network, so opening a message never fires its tracking pixels or loads remote content.
FRAME_CSP = ('<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
             'img-src data: cid:; style-src \'unsafe-inline\'; font-src data:">')


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    """The list's query string as typed: every value kept as text, so a bad one can be
    shown back in its field next to the message."""

    status: str = ""
    channel: str = ""
    workflow: str = ""
    contact: str = ""
    range: str = DEFAULT_RANGE
    from_: str = ""
    to: str = ""
    limit: str = ""
    cursor: str = ""
    after: str = ""
    fingerprint: str = ""

    @classmethod
    def from_params(cls, params: QueryParams) -> Filters:
        def get(name: str) -> str:
            return (params.get(name) or "").strip()

        from_, to = get("from"), get("to")
        range_ = get("range") or ("custom" if from_ or to else DEFAULT_RANGE)
        if range_ != "custom":
            from_ = to = ""  # the hidden custom fields still submit; a preset wins
        return cls(status=get("status").upper(), channel=get("channel").lower(),
                   workflow=get("workflow"), contact=get("contact"), range=range_,
                   from_=from_, to=to, limit=get("limit"), cursor=get("cursor"),
                   after=get("after"), fingerprint=get("fingerprint"))

    def href(self, path: str = "/delivery-ops", **changes: str) -> str:
        """This view's URL (or `path`'s) with `changes`; paging cursors are dropped unless
        given."""
        values = {**asdict(self), "cursor": "", "after": "", **changes}
        if values["range"] == DEFAULT_RANGE:
            values["range"] = ""
        if values["limit"] == str(DEFAULT_LIMIT):
            values["limit"] = ""
        pairs = [(("from" if k == "from_" else k), v) for k, v in values.items() if v]
        return path + (f"?{urlencode(pairs)}" if pairs else "")

    def query(self) -> delivery_ops.DeliveryQuery:
        if self.range not in RANGES:
            raise InvalidInput(f"range must be one of {', '.join(RANGES)}")
        preset = self.range if self.range not in ("all", "custom") else None
        return delivery_ops.DeliveryQuery(
            status=self.status or None, channel=self.channel or None,
            workflow=self.workflow or None, contact=self.contact or None, range=preset,
            created_from=_when(self.from_, "from"), created_to=_when(self.to, "to"),
            fingerprint=self.fingerprint or None)

    def page_size(self) -> int:
        if not self.limit:
            return DEFAULT_LIMIT
        if not self.limit.isdigit():
            raise InvalidInput(f"limit must be a whole number from 1 to {delivery_ops.MAX_PAGE}")
        return int(self.limit)


def _when(text: str, name: str) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"{name} is not a date and time (e.g. 2025-01-31T09:30)") from exc


def _chips(filters: Filters, counts: dict[str, int]) -> list[dict[str, Any]]:
    chips = [{"value": "ALL", "label": "All", "count": counts.get("ALL", 0),
              "href": filters.href(status=""), "active": not filters.status}]
    for status in delivery_ops.STATUSES:
        chips.append({"value": status, "label": status.title(), "count": counts.get(status, 0),
                      "href": filters.href(status=status), "active": filters.status == status})
    return chips


def _list_context(session: Session, viewer: Viewer, filters: Filters) -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "filters": filters, "ranges": RANGES, "channels": delivery_ops.CHANNELS,
        "workflows": [w.key for w in workflow_service.list_all(
            session, workspace_id=viewer.workspace_id)],
        "csv_href": filters.href("/delivery-ops.csv", limit=""),
    }
    if filters.fingerprint:
        ctx["cause"] = failures.describe(session, workspace_id=viewer.workspace_id,
                                         fingerprint=filters.fingerprint)
    return ctx


def _refused(request: Request, session: Session, viewer: Viewer, filters: Filters,
             exc: InvalidInput) -> HTMLResponse:
    """The list with the filters as typed and what is wrong with them (422)."""
    ctx = _list_context(session, viewer, filters)
    return render(request, "deliveries/list.html", {**ctx, "error": exc.detail},
                  status_code=422)


@router.get("/delivery-ops", name="deliveries:list")
def list_page(request: Request, viewer: ViewerDep, session: HistorySessionDep, runtime: RuntimeDep,
              settings: SettingsDep) -> HTMLResponse:
    filters = Filters.from_params(request.query_params)
    try:
        page = delivery_ops.browse(
            session, workspace_id=viewer.workspace_id, query=filters.query(),
            limit=filters.page_size(), cursor=filters.cursor or None,
            after=filters.after or None, now=runtime.clock(),
            phone_region=settings.default_phone_region)
    except InvalidInput as exc:
        return _refused(request, session, viewer, filters, exc)
    ctx = _list_context(session, viewer, filters)
    ctx.update(
        page=page, chips=_chips(filters, page.counts),
        older_href=filters.href(cursor=page.older_cursor) if page.older_cursor else None,
        newer_href=filters.href(after=page.newer_cursor) if page.newer_cursor else None,
        first_href=filters.href() if filters.cursor or filters.after else None,
    )
    return render(request, "deliveries/list.html", ctx)


@router.get("/delivery-ops.csv", name="deliveries:csv", response_model=None)
def list_csv(request: Request, viewer: ViewerDep, session: HistorySessionDep,
             runtime: RuntimeDep, settings: SettingsDep) -> HTMLResponse | StreamingResponse:
    """Every attempt the list's filters match (all pages: limit, cursor and after are not
    used), streamed as CSV; filters the list refuses are refused the same way."""
    filters = Filters.from_params(request.query_params)
    now = runtime.clock()
    try:
        delivery_filter = delivery_ops.build_filter(
            session, workspace_id=viewer.workspace_id, query=filters.query(), now=now,
            phone_region=settings.default_phone_region)
    except InvalidInput as exc:
        return _refused(request, session, viewer, filters, exc)
    rows = delivery_ops.export_rows(request.state.history_sessions,
                                    delivery_filter=delivery_filter)
    return csv_response(csv_chunks(CSV_COLUMNS, map(csv_record, rows)),
                        filename=f"delivery-attempts-{viewer.workspace_slug}-"
                                 f"{now:%Y%m%d-%H%M%S}.csv")


def csv_record(row: ExportRow) -> tuple[object, ...]:
    """One attempt's CSV cells. Ids, the workflow key (KEY_RE), the channel, status and
    times cannot start a formula; the address, the subject (made from contact data), the
    error and the provider's message id (both the provider's words) can."""
    (attempt_id, run_id, key, recipient, channel, provider, status, number, subject, error,
     suppressed_by, message_id, resend_of, created, sent) = row
    return (attempt_id, run_id, key, safe_cell(recipient), channel, safe_cell(provider),
            status, number, safe_cell(subject), safe_cell(error), safe_cell(suppressed_by),
            safe_cell(message_id), resend_of, created, sent)


def _events(response: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The provider's status callbacks kept in the response, with their times readable."""
    events = (response or {}).get("events")
    if not isinstance(events, list):
        return []
    out = []
    for event in events:
        if isinstance(event, dict):
            at = event.get("at")
            try:
                when = datetime.fromisoformat(at) if isinstance(at, str) else None
            except ValueError:
                when = None
            out.append({**event, "at": when, "at_text": at})
    return out


def _detail(request: Request, session: SessionDep, viewer: Viewer,
            found: delivery_ops.Detail, *, status_code: int = 200, error: str | None = None,
            reason: str = "", flash: dict[str, str] | None = None) -> HTMLResponse:
    attempt = found.row.attempt
    # The live region's re-fetch (app.js) gets the attempt alone, without the page around it.
    live = request.headers.get("X-Requested-With") == "fetch"
    name = "deliveries/_attempt.html" if live else "deliveries/detail.html"
    return render(request, name, {
        "d": found, "a": attempt, "events": _events(attempt.provider_response),
        "suppressed": delivery_ops.suppression_of(session, attempt=attempt),
        "html_doc": FRAME_CSP + attempt.html if attempt.html else None,
        "error": error, "reason": reason, "flash": flash, "max_reason": MAX_REASON,
    }, status_code=status_code)


@router.get("/delivery-ops/{attempt_id}", name="deliveries:detail")
def detail_page(attempt_id: str, request: Request, viewer: ViewerDep,
                session: SessionDep) -> HTMLResponse:
    found = delivery_ops.detail(session, workspace_id=viewer.workspace_id,
                                attempt_id=attempt_id)
    notice = NOTICES.get(request.query_params.get("notice", ""))
    return _detail(request, session, viewer, found,
                   flash={"text": notice, "kind": "ok"} if notice else None)


def _check_resend(found: delivery_ops.Detail, suppressed: str | None, *, reason: str,
                  override: bool) -> None:
    """The service's refusals, worded for this form (the service checks them again)."""
    if not reason:
        raise InvalidInput("give a reason; it is kept on the new attempt")
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"the reason is at most {MAX_REASON} characters")
    attempt = found.row.attempt
    if suppressed and not override and attempt.status != "QUEUED":
        raise Conflict(f"the contact's {attempt.channel} is {suppressed}; tick “Override "
                       "suppression” to send it anyway")


@router.post("/delivery-ops/{attempt_id}/resend", name="deliveries:resend", response_model=None)
def resend(attempt_id: str, request: Request, form: FormDep, viewer: OperatorDep,
           session: SessionDep, runtime: RuntimeDep) -> HTMLResponse | RedirectResponse:
    found = delivery_ops.detail(session, workspace_id=viewer.workspace_id,
                                attempt_id=attempt_id)
    reason = str(form.get("reason") or "").strip()
    override = str(form.get("override") or "") in ("1", "on", "true")
    try:
        _check_resend(found, delivery_ops.suppression_of(session, attempt=found.row.attempt),
                      reason=reason, override=override)
        copy = resend_service.resend(session, workspace_id=viewer.workspace_id,
                                     attempt_id=attempt_id, reason=reason, override=override,
                                     actor=viewer.principal.actor, now=runtime.clock())
    except (Conflict, InvalidInput) as exc:
        # Nothing was queued: every refusal comes before anything is added.
        return _detail(request, session, viewer, found, status_code=exc.status_code,
                       error=f"Not resent: {exc.detail}.", reason=reason)
    wake_worker_after_commit(session)
    return RedirectResponse(f"/delivery-ops/{copy.id}?notice=resent", status_code=303)
