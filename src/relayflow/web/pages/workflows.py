"""Pages: the workspace's workflows, one workflow's versions and trigger, and its actions."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from relayflow.config import Settings
from relayflow.errors import Conflict, InvalidInput, MalformedInput
from relayflow.services import run as run_service
from relayflow.services import schedule as schedule_service
from relayflow.services import webhook as webhook_service
from relayflow.services import workflow as workflow_service
from relayflow.services.login import Viewer
from relayflow.services.runtime import Runtime
from relayflow.web.deps import RuntimeDep, SessionDep, SettingsDep, wake_worker_after_commit
from relayflow.web.pages.deps import FormDep, OperatorDep, ViewerDep
from relayflow.web.pages.graph import render_graph
from relayflow.web.pages.templating import render

router = APIRouter()

# The outcome columns of the list, in the order they are shown (keys of run_service.CHIPS).
OUTCOMES = ("COMPLETED", "FAILED", "RUNNING", "CANCELED")
_MAX_CONTACT = 320
_EVENT_PATH = re.compile(r"^\{\{\s*event\.([A-Za-z_][\w.]*)\s*\}\}$")
_SAMPLE = {"email": "ada@example.com", "phone": "+14155550101", "external_id": "crm-123"}


def _href(key: str) -> str:
    return f"/workflows/{quote(key, safe='')}"


def _runs_href(key: str, **extra: str) -> str:
    return "/runs?" + urlencode({"workflow": key, **extra})


@router.get("/workflows", name="workflows:list_page")
def list_page(
    request: Request, session: SessionDep, runtime: RuntimeDep, settings: SettingsDep,
    viewer: ViewerDep,
) -> Response:
    rows = workflow_service.overview(session, workspace_id=viewer.workspace_id,
                                     now=runtime.clock())
    return render(request, "workflows/list.html", {
        "rows": rows, "outcomes": OUTCOMES, "href": _href, "runs_href": _runs_href,
        "api_url": f"{_base_url(request, settings)}/api/v1/workflows",
    })


# --- the workflow page -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunForm:
    """What was typed into "Run now", kept when the page is shown again with an error."""

    contact: str = ""
    event: str = ""
    error: str | None = None


_NOTICES = {
    "activated": "Activated: new runs can start.",
    "rotated": "The webhook has a new address; the previous one now answers 404.",
}


def _flash(request: Request) -> dict[str, str] | None:
    notice = request.query_params.get("notice")
    if notice == "deactivated":
        raw = request.query_params.get("canceled", "")
        canceled = int(raw) if raw.isdigit() else 0
        raw_total = request.query_params.get("to_cancel", "")
        total = int(raw_total) if raw_total.isdigit() else canceled
        runs = "run" if total == 1 else "runs"
        if total > canceled:  # the rest is canceled by the workers, batch by batch
            return {"text": f"Deactivated: {total:,} in-flight {runs} are being canceled in "
                            f"the background ({canceled:,} so far), and no new run will "
                            "start until it is activated again.", "kind": "ok"}
        return {"text": f"Deactivated: {canceled} in-flight {runs} canceled, and no new run "
                        "will start until it is activated again.", "kind": "ok"}
    text = _NOTICES.get(notice or "")
    return {"text": text, "kind": "ok"} if text else None


def _base_url(request: Request, settings: Settings) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


def _example_event(trigger: dict[str, Any]) -> dict[str, Any]:
    """A payload the trigger's contact mapping can read (`{{ event.user.email }}` → nested)."""
    event: dict[str, Any] = {}
    mapping = trigger.get("contact")
    for field, template in (mapping.items() if isinstance(mapping, dict) else ()):
        found = _EVENT_PATH.match(str(template).strip())
        if not found:
            continue
        *parents, leaf = found.group(1).split(".")
        holder = event
        for part in parents:
            inner = holder.get(part)
            if not isinstance(inner, dict):
                inner = holder[part] = {}
            holder = inner
        holder[leaf] = _SAMPLE.get(field, "value")
    return event or {"email": "ada@example.com"}


def _webhook_curl(url: str, trigger: dict[str, Any], signed: bool) -> str:
    body = json.dumps(_example_event(trigger))
    if not signed:
        return (f"curl -X POST '{url}' \\\n  -H 'Content-Type: application/json' \\\n"
                f"  -d '{body}'")
    return (f"body='{body}'\nts=$(date +%s)\n"
            "sig=$(printf '%s.%s' \"$ts\" \"$body\" | openssl dgst -sha256 "
            "-hmac \"$SIGNING_SECRET\" | sed 's/^.*= //')\n"
            f"curl -X POST '{url}' \\\n  -H 'Content-Type: application/json' \\\n"
            "  -H \"Relayflow-Signature: t=$ts,v1=$sig\" \\\n  -d \"$body\"")


def _manual_curl(base: str, key: str) -> str:
    body = json.dumps({"contact": {"email": "ada@example.com"}, "event": {}})
    return (f"curl -X POST '{base}/api/v1/workflows/{key}/runs' \\\n"
            "  -H \"Authorization: Bearer $RELAYFLOW_API_KEY\" \\\n"
            f"  -H 'Content-Type: application/json' \\\n  -d '{body}'")


def _schedule(trigger: dict[str, Any], runtime: Runtime) -> dict[str, Any]:
    """The schedule as the JSON API states it: the same next five fire times (UTC), plus each
    one on the schedule's own wall clock."""
    zone = schedule_service.zone_of(trigger)
    upcoming = schedule_service.next_fire_times(trigger, now=runtime.clock(), count=5)
    return {
        "zone": str(zone),
        "fires": [(at, at.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z")) for at in upcoming],
    }


def _node_of(request: Request, definition: dict[str, Any]) -> str | None:
    node = request.query_params.get("node")
    return node if node and node in definition.get("nodes", {}) else None


def _workflow_page(
    request: Request, session: Session, runtime: Runtime, settings: Settings, viewer: Viewer,
    key: str, *, run_form: RunForm | None = None, status_code: int = 200,
) -> Response:
    summary = workflow_service.summary(session, workspace_id=viewer.workspace_id, key=key,
                                       now=runtime.clock())
    workflow, current = summary.detail.workflow, summary.detail.current
    trigger = workflow_service.trigger_of(current)
    base = _base_url(request, settings)
    path = workflow_service.webhook_path(workflow)
    webhook_url = f"{base}{path}" if path else None
    return render(request, "workflows/detail.html", {
        "summary": summary, "workflow": workflow, "current": current,
        "versions": summary.detail.versions, "trigger": trigger,
        # ?node= (from /failures): the node a cause of failure points at, marked on the graph.
        "graph": render_graph(current.definition, failed=_node_of(request, current.definition)),
        "webhook_url": webhook_url,
        "webhook_curl": (_webhook_curl(webhook_url, trigger, summary.signing is not None)
                         if webhook_url else None),
        "manual_curl": _manual_curl(base, workflow.key),
        "schedule": _schedule(trigger, runtime) if trigger.get("type") == "schedule" else None,
        "outcomes": OUTCOMES, "href": _href, "runs_href": _runs_href,
        "run_form": run_form or RunForm(), "phone_region": settings.default_phone_region,
        "cancel_batch": runtime.cancel_batch_size,
        "flash": None if run_form and run_form.error else _flash(request),
    }, status_code=status_code)


@router.get("/workflows/{key}", name="workflows:detail_page")
def detail_page(
    key: str, request: Request, session: SessionDep, runtime: RuntimeDep,
    settings: SettingsDep, viewer: ViewerDep,
) -> Response:
    return _workflow_page(request, session, runtime, settings, viewer, key)


def _back(key: str, **notice: str) -> RedirectResponse:
    return RedirectResponse(f"{_href(key)}?{urlencode(notice)}", status_code=303)


@router.post("/workflows/{key}/activate", name="workflows:activate_page")
def activate(
    key: str, session: SessionDep, runtime: RuntimeDep, viewer: OperatorDep, _form: FormDep
) -> Response:
    workflow_service.activate(session, workspace_id=viewer.workspace_id, key=key,
                              actor=viewer.email, now=runtime.clock())
    return _back(key, notice="activated")


@router.post("/workflows/{key}/deactivate", name="workflows:deactivate_page")
def deactivate(
    key: str, session: SessionDep, runtime: RuntimeDep, viewer: OperatorDep, _form: FormDep
) -> Response:
    workflow, canceled = workflow_service.deactivate(
        session, workspace_id=viewer.workspace_id, key=key, actor=viewer.email,
        now=runtime.clock(), batch_size=runtime.cancel_batch_size)
    if workflow.cancel_total > canceled:
        return _back(key, notice="deactivated", canceled=str(canceled),
                     to_cancel=str(workflow.cancel_total))
    return _back(key, notice="deactivated", canceled=str(canceled))


@router.post("/workflows/{key}/webhook/rotate", name="workflows:rotate_page")
def rotate_webhook(
    key: str, session: SessionDep, runtime: RuntimeDep, viewer: OperatorDep, _form: FormDep
) -> Response:
    webhook_service.rotate_token(session, workspace_id=viewer.workspace_id, key=key,
                                 actor=viewer.email, now=runtime.clock())
    return _back(key, notice="rotated")


def _event(text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        return webhook_service.parse_event(text.encode())
    except (MalformedInput, InvalidInput) as exc:
        raise InvalidInput(exc.detail.replace("The request body", "The event")) from None


def _contact(text: str) -> dict[str, str]:
    if not text:
        raise InvalidInput("Enter the contact's email address or phone number.")
    if len(text) > _MAX_CONTACT:
        raise InvalidInput(f"The contact is longer than {_MAX_CONTACT} characters.")
    return {"email": text} if "@" in text else {"phone": text}


@router.post("/workflows/{key}/runs", name="workflows:run_now_page")
def run_now(
    key: str, request: Request, session: SessionDep, runtime: RuntimeDep,
    settings: SettingsDep, viewer: OperatorDep, form: FormDep,
) -> Response:
    contact = str(form.get("contact") or "").strip()
    event = str(form.get("event") or "")
    try:
        enrolled = run_service.trigger_manual(
            session, workspace_id=viewer.workspace_id, workflow_key=key,
            contact=_contact(contact), event=_event(event), now=runtime.clock(),
            phone_region=settings.default_phone_region,
        )
    except (InvalidInput, Conflict) as exc:
        session.rollback()  # a contact created on the way must not outlive the refusal
        return _workflow_page(request, session, runtime, settings, viewer, key,
                              run_form=RunForm(contact, event, exc.detail),
                              status_code=exc.status_code)
    wake_worker_after_commit(session)
    return RedirectResponse(f"/runs/{enrolled.run.id}", status_code=303)
