"""Pages: one run (/runs/{id}) with its live status region, cancel and retry."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup

from relayflow.services import canceler, run_view
from relayflow.services import run as run_service
from relayflow.services.run_view import RunView
from relayflow.web.deps import RuntimeDep, SessionDep, wake_worker_after_commit
from relayflow.web.pages.deps import FormDep, OperatorDep, ViewerDep
from relayflow.web.pages.graph import render_graph
from relayflow.web.pages.templating import render, short_id

router = APIRouter()

NOTICES = {
    "canceled": "Run canceled.",
    "cancel-requested": "Cancel requested: the worker stops this run at its next step.",
}


def _flash(notice: str | None, view: RunView) -> dict[str, str] | None:
    if notice == "retried" and view.run.retry_of is not None:
        return {"text": f"Retry of {short_id(view.run.retry_of)} started.", "kind": "ok"}
    text = NOTICES.get(notice or "")
    return {"text": text, "kind": "ok"} if text else None


def _graph(view: RunView) -> Markup:
    return render_graph(view.version.definition, visited=view.visited,
                        failed=view.failed_node, current=view.current_node,
                        waiting=view.waiting_node, handled=view.handled)


def canceler_view(canceled_by: str | None) -> dict[str, str | None] | None:
    """Who canceled a run, as the page names them (`text`), with a link when there is one
    to follow (a bulk operation)."""
    if not canceled_by:
        return None
    kind, _, name = canceled_by.partition(":")
    if kind == "member" and name:
        return {"text": name, "href": None}
    if kind == "api-key" and name:
        return {"text": f"API key {name}", "href": None}
    if kind == "bulk" and name:
        return {"text": f"bulk operation {short_id(name)}", "href": f"/bulk-operations/{name}"}
    if canceled_by == canceler.DEACTIVATION:
        return {"text": "the workflow's deactivation", "href": None}
    return {"text": canceled_by, "href": None}


def _context(view: RunView) -> dict[str, Any]:
    return {"view": view, "run": view.run, "row": view.detail.row, "graph": _graph(view),
            "canceler": canceler_view(view.run.canceled_by),
            "max_cancel_reason": run_service.MAX_CANCEL_REASON}


@router.get("/runs/{run_id}", name="pages:run_detail")
def run_detail(
    request: Request, run_id: str, viewer: ViewerDep, session: SessionDep, runtime: RuntimeDep,
    notice: str | None = None,
) -> Response:
    view = run_view.build(session, workspace_id=viewer.workspace_id, run_id=run_id,
                          now=runtime.clock())
    return render(request, "runs/detail.html", {**_context(view), "flash": _flash(notice, view)})


@router.get("/runs/{run_id}/live", name="pages:run_live")
def run_live(
    request: Request, run_id: str, viewer: ViewerDep, session: SessionDep, runtime: RuntimeDep,
) -> Response:
    """The status, facts, graph and step trace; without data-live-url once the run is
    finished, which stops the page's polling."""
    view = run_view.build(session, workspace_id=viewer.workspace_id, run_id=run_id,
                          now=runtime.clock())
    return render(request, "runs/_detail_live.html", _context(view))


@router.post("/runs/{run_id}/cancel", name="pages:run_cancel")
def cancel_run(
    run_id: str, viewer: OperatorDep, form: FormDep, session: SessionDep, runtime: RuntimeDep,
) -> RedirectResponse:
    run = run_service.cancel(session, workspace_id=viewer.workspace_id, run_id=run_id,
                             actor=viewer.principal.actor, now=runtime.clock(),
                             reason=str(form.get("reason") or "").strip())
    # A worker holding the run only stops at its next step boundary.
    notice = "canceled" if run.status == "CANCELED" else "cancel-requested"
    return RedirectResponse(f"/runs/{run.id}?notice={notice}", status_code=303)


@router.post("/runs/{run_id}/retry", name="pages:run_retry")
def retry_run(
    run_id: str, viewer: OperatorDep, form: FormDep, session: SessionDep, runtime: RuntimeDep,
) -> RedirectResponse:
    run = run_service.retry(session, workspace_id=viewer.workspace_id, run_id=run_id,
                            actor=viewer.principal.actor, now=runtime.clock(),
                            version=str(form.get("version") or "original"))
    wake_worker_after_commit(session)
    return RedirectResponse(f"/runs/{run.id}?notice=retried", status_code=303)
