"""Pages: Failures — failed runs and delivery attempts grouped by cause (DESIGN §8.1).

The filters are GET /api/v1/failures's, under the same names (kind, workflow, range, from,
to, cursor), so a page URL and an API call say the same thing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from relayflow.errors import InvalidInput
from relayflow.services import failures
from relayflow.services import workflow as workflow_service
from relayflow.storage.repositories.failure import Group
from relayflow.web.deps import HistorySessionDep, RuntimeDep
from relayflow.web.pages.deps import ViewerDep
from relayflow.web.pages.templating import render

router = APIRouter()

DEFAULT_RANGE = "7d"
RANGES = (("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days"))
KINDS = (("", "Runs and deliveries"), ("run", "Failed runs"),
         ("delivery", "Failed or bounced deliveries"))
SPARK_W, SPARK_H = 120, 24


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    kind: str = ""
    workflow: str = ""
    range: str = ""
    cursor: str = ""

    @classmethod
    def from_request(cls, request: Request) -> Filters:
        q = request.query_params
        return cls(**{name: (q.get(name) or "").strip()[:200]
                      for name in cls.__dataclass_fields__})

    def href(self, **changes: str) -> str:
        values = asdict(replace(self, **changes))
        if values["range"] == DEFAULT_RANGE:
            values["range"] = ""
        pairs = [(k, v) for k, v in values.items() if v]
        return "/failures" + (f"?{urlencode(pairs)}" if pairs else "")

    def query(self) -> failures.FailureQuery:
        return failures.FailureQuery(kind=self.kind or None, workflow=self.workflow or None,
                                     range=self.range or DEFAULT_RANGE)


def sparkline(counts: list[int], hours: int) -> Markup:
    """An inline SVG of the counts, the tallest bar at full height, every bar at least a
    hairline where there was a failure (one failure among thousands still shows). Made
    here as one string: drawn by the template, 30 bars a row cost the page 30 ms at 40
    rows."""
    peak = max(counts, default=0)
    width = SPARK_W / max(len(counts), 1)
    bars = []
    for i, n in enumerate(counts):
        if n:
            height = max(1.5, SPARK_H * n / peak)
            bars.append(f'<rect x="{i * width:.2f}" y="{SPARK_H - height:.2f}" '
                        f'width="{max(width - 1, 1):.2f}" height="{height:.2f}">'
                        f"<title>{n}</title></rect>")
    bar = "a day" if hours == 24 else "an hour" if hours == 1 else f"{hours} hours"
    label = f"{sum(counts)} over the range, at most {peak} in one bar of {bar}"
    return Markup(  # nosec B704 - numbers only
        f'<svg class="spark" viewBox="0 0 {SPARK_W} {SPARK_H}" width="{SPARK_W}" '
        f'height="{SPARK_H}" role="img" aria-label="{label}">{"".join(bars)}'
        f'<line x1="0" y1="{SPARK_H - 0.5}" x2="{SPARK_W}" y2="{SPARK_H - 0.5}"/></svg>')


def links(group: Group) -> dict[str, str | None]:
    """Where a group's rows lead: its runs (or attempts) and its node on the graph."""
    if group.kind == "run":
        listing = "/runs?" + urlencode({"status": "FAILED", "fingerprint": group.fingerprint,
                                        "range": "custom"})
    else:
        listing = "/delivery-ops?" + urlencode({"fingerprint": group.fingerprint,
                                                "range": "all"})
    node = (f"/workflows/{group.workflow_key}?" + urlencode({"node": group.node_id or ""})
            if group.workflow_key else None)
    return {"listing": listing, "node": node}


@router.get("/failures", name="pages:failures")
def failures_page(request: Request, viewer: ViewerDep, session: HistorySessionDep,
                  runtime: RuntimeDep) -> Response:
    filters = Filters.from_request(request)
    workflows = workflow_service.list_all(session, workspace_id=viewer.workspace_id)
    ctx: dict[str, Any] = {"filters": filters, "ranges": RANGES, "kinds": KINDS,
                           "workflows": workflows, "default_range": DEFAULT_RANGE}
    try:
        if filters.range and filters.range not in dict(RANGES):
            raise InvalidInput(f"range must be one of {', '.join(dict(RANGES))}")
        page = failures.search(session, workspace_id=viewer.workspace_id,
                               query=filters.query(), cursor=filters.cursor or None,
                               now=runtime.clock())
    except InvalidInput as exc:
        return render(request, "failures/list.html", {**ctx, "error": exc.detail},
                      status_code=422)
    hours = int(page.bars.width.total_seconds()) // 3600
    rows = [{"group": g, "spark": sparkline(g.buckets, hours), **links(g)}
            for g in page.groups]
    return render(request, "failures/list.html", {
        **ctx, "page": page, "rows": rows,
        "older_href": filters.href(cursor=page.next_cursor) if page.next_cursor else None,
        "first_href": filters.href(cursor="") if filters.cursor else None,
        "total": sum(g.count for g in page.groups), "now": runtime.clock()})


__all__ = ["router"]
