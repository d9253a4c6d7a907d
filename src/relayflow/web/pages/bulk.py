"""Pages: bulk operations — what acting would do, shown before the confirm button; the
operation's live progress; the recent ones.

/bulk-operations/new takes the run filters of /runs (q, status, workflow, contact, range,
from, to, fingerprint) and `action`; its dry run is computed on every load, so what the
confirm button acts on is what the page shows (give or take runs that arrive meanwhile:
the set is frozen when the operation is made, and the page says so)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from relayflow.errors import Conflict, InvalidInput, NotFound
from relayflow.services import bulk
from relayflow.services import workflow as workflow_service
from relayflow.web.deps import RuntimeDep, SessionDep, SettingsDep, wake_worker_after_commit
from relayflow.web.pages.deps import FormDep, OperatorDep, ViewerDep
from relayflow.web.pages.templating import render

router = APIRouter()

FILTERS = ("q", "status", "workflow", "contact", "range", "from", "to", "fingerprint")
ACTION_WORDS = {"retry": ("Retry", "retried"), "cancel": ("Cancel", "canceled")}


def _filter_of(values: Any) -> dict[str, str]:
    """The run filters among request values, those given; `range=custom` is no bound."""
    found = {name: str(values.get(name) or "").strip()[:400] for name in FILTERS}
    if found.get("range") in ("custom", "all"):
        found["range"] = ""
    return {name: value for name, value in found.items() if value}


def _runs_href(filter_: dict[str, str]) -> str:
    pairs = dict(filter_)
    if "range" not in pairs and not ("from" in pairs or "to" in pairs):
        pairs["range"] = "custom"  # /runs shows 30 days unless told otherwise
    return "/runs?" + urlencode(pairs)


def _form_page(request: Request, session: Any, runtime: Any, settings: Any, viewer: Any,
               *, action: str, filter_: dict[str, str], version: str, reason: str,
               error: str | None = None, status_code: int = 200) -> Response:
    ctx: dict[str, Any] = {
        "action": action, "filter": filter_, "version": version, "reason": reason,
        "words": ACTION_WORDS.get(action, ("Act on", "acted on")), "runs_href":
        _runs_href(filter_), "error": error, "max_runs": bulk.MAX_RUNS,
        "workflow": None, "current": None}
    try:
        request_spec = bulk.spec(action=action, filter=filter_,
                                 version=version if action == "retry" else None,
                                 reason=reason)
        ctx["preview"] = bulk.preview(session, workspace_id=viewer.workspace_id,
                                      request=request_spec, now=runtime.clock(),
                                      phone_region=settings.default_phone_region)
    except InvalidInput as exc:
        ctx["error"] = ctx["error"] or exc.detail
        ctx["preview"] = None
        status_code = 422
    if filter_.get("workflow"):
        try:
            workflow = workflow_service.get(session, workspace_id=viewer.workspace_id,
                                            key=filter_["workflow"])
            ctx["workflow"] = workflow
            ctx["current"] = workflow_service.current_version(session, workflow).number
        except NotFound:  # the preview already says nothing matches
            ctx["workflow"] = None
    return render(request, "bulk/new.html", ctx, status_code=status_code)


@router.get("/bulk-operations/new", name="bulk:new")
def new_page(request: Request, viewer: OperatorDep, session: SessionDep,
             runtime: RuntimeDep, settings: SettingsDep) -> Response:
    q = request.query_params
    return _form_page(request, session, runtime, settings, viewer,
                      action=q.get("action") or "retry", filter_=_filter_of(q),
                      version=q.get("version") or "original", reason="")


@router.post("/bulk-operations", name="bulk:create", response_model=None)
def create(request: Request, form: FormDep, viewer: OperatorDep, session: SessionDep,
           runtime: RuntimeDep, settings: SettingsDep) -> Response:
    action = str(form.get("action") or "")
    filter_ = _filter_of(form)
    version = str(form.get("version") or "original")
    reason = str(form.get("reason") or "").strip()
    try:
        request_spec = bulk.spec(action=action, filter=filter_,
                                 version=version if action == "retry" else None,
                                 reason=reason)
        operation = bulk.create(session, workspace_id=viewer.workspace_id,
                                request=request_spec, actor=viewer.principal.actor,
                                now=runtime.clock(),
                                phone_region=settings.default_phone_region)
    except InvalidInput as exc:
        return _form_page(request, session, runtime, settings, viewer, action=action,
                          filter_=filter_, version=version, reason=reason, error=exc.detail,
                          status_code=422)
    wake_worker_after_commit(session)
    return RedirectResponse(f"/bulk-operations/{operation.id}", status_code=303)


def _progress(operation: Any) -> dict[str, Any]:
    acted = operation.done + operation.skipped + operation.failed
    return {"id": str(operation.id), "status": operation.status, "total": operation.total,
            "done": operation.done, "skipped": operation.skipped, "failed": operation.failed,
            "acted": acted, "percent": round(100 * acted / operation.total)
            if operation.total else 100}


@router.get("/bulk-operations/{operation_id}", name="bulk:detail")
def detail_page(operation_id: str, request: Request, viewer: ViewerDep,
                session: SessionDep) -> Response:
    operation = bulk.get(session, workspace_id=viewer.workspace_id, operation_id=operation_id)
    return render(request, "bulk/detail.html", {
        "operation": operation, "progress": _progress(operation),
        "words": ACTION_WORDS[operation.action],
        "reasons": bulk.skip_reasons(session, operation=operation),
        "items": bulk.items(session, operation=operation, limit=50),
        "runs_href": _runs_href({k: str(v) for k, v in operation.filter.items()
                                 if k in FILTERS}),
        "notice": request.query_params.get("notice")})


@router.get("/bulk-operations/{operation_id}/progress", name="bulk:progress")
def progress(operation_id: str, viewer: ViewerDep, session: SessionDep) -> JSONResponse:
    """The counts, for the page's live progress bar."""
    operation = bulk.get(session, workspace_id=viewer.workspace_id, operation_id=operation_id)
    return JSONResponse(_progress(operation), headers={"Cache-Control": "no-store"})


@router.post("/bulk-operations/{operation_id}/cancel", name="bulk:cancel",
             response_model=None)
def cancel(operation_id: str, form: FormDep, viewer: OperatorDep, session: SessionDep,
           runtime: RuntimeDep) -> Response:
    try:
        bulk.cancel(session, workspace_id=viewer.workspace_id, operation_id=operation_id,
                    actor=viewer.principal.actor, now=runtime.clock())
    except Conflict:
        return RedirectResponse(f"/bulk-operations/{operation_id}?notice=finished",
                                status_code=303)
    return RedirectResponse(f"/bulk-operations/{operation_id}?notice=canceled",
                            status_code=303)


@router.get("/bulk-operations", name="bulk:list")
def list_page(request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    operations = bulk.recent(session, workspace_id=viewer.workspace_id)
    return render(request, "bulk/list.html", {
        "operations": [(o, _progress(o), ACTION_WORDS[o.action]) for o in operations]})
