"""Settings → Retention: how long `relayflow prune` keeps the workspace's history.

Edits the same retention as PUT /api/v1/settings/retention, through the same service
function (same validation, same `retention.set` audit event)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from relayflow.errors import InvalidInput
from relayflow.services import retention as retention_service
from relayflow.services.login import Viewer
from relayflow.web.deps import RuntimeDep, SessionDep
from relayflow.web.pages.deps import AdminDep, FormDep, ViewerDep
from relayflow.web.pages.settings_common import ROLE_RULES, done, flash, sub_nav, text_field
from relayflow.web.pages.templating import render

router = APIRouter()
PATH = "/settings/retention"
FIELDS = ("days", "failed_days")


def _page(request: Request, session: Session, viewer: Viewer, *, status_code: int = 200,
          problem: str | None = None, submitted: dict[str, str] | None = None,
          flash_: dict[str, str] | None = None) -> Response:
    shown = retention_service.show(session, workspace_id=viewer.workspace_id)
    values = submitted if submitted is not None else {
        "days": str(shown.days or ""), "failed_days": str(shown.failed_days or "")}
    ctx: dict[str, Any] = {
        "nav": sub_nav(viewer), "settings_section": "retention",
        "rule": ROLE_RULES["retention"], "retention": shown, "values": values,
        "problem": problem, "flash": flash_, "max_days": retention_service.MAX_RETENTION_DAYS,
    }
    return render(request, "settings/retention.html", ctx, status_code=status_code)


@router.get(PATH, name="settings:retention")
def retention_page(request: Request, session: SessionDep, viewer: ViewerDep,
                   notice: str | None = None, subject: str | None = None) -> Response:
    return _page(request, session, viewer, flash_=flash(notice, subject))


def _days(text: str, name: str) -> int | None:
    if not text:
        return None
    if not text.isdigit() or len(text) > 6:
        raise InvalidInput(f"{name} must be a whole number of days from 1 to "
                           f"{retention_service.MAX_RETENTION_DAYS}, or empty")
    return int(text)


@router.post(PATH, name="settings:retention_put")
def put_retention(request: Request, session: SessionDep, runtime: RuntimeDep,
                  viewer: AdminDep, form: FormDep) -> Response:
    values = {name: str(form.get(name) or "")[:20] for name in FIELDS}
    try:
        values = {name: text_field(form, name, max_length=20) for name in FIELDS}
        retention_service.put(session, workspace_id=viewer.workspace_id,
                              days=_days(values["days"], "Keep history"),
                              failed_days=_days(values["failed_days"], "Keep failures"),
                              now=runtime.clock(), actor=viewer.principal.actor)
    except InvalidInput as exc:
        session.rollback()
        return _page(request, session, viewer, status_code=422, problem=exc.detail,
                     submitted=values)
    return done(PATH, "retention_saved", "history")
