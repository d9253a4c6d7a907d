"""Settings → Secrets: names and times only; values go in, never come out."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from relayflow.errors import InvalidInput
from relayflow.services import provider as provider_service
from relayflow.services import secret as secret_service
from relayflow.services.login import Viewer
from relayflow.web.deps import RuntimeDep, SessionDep
from relayflow.web.pages.deps import FormDep, OperatorDep, ViewerDep
from relayflow.web.pages.settings_common import ROLE_RULES, done, flash, sub_nav, text_field
from relayflow.web.pages.templating import render

router = APIRouter()
PATH = "/settings/secrets"
MAX_VALUE = 64 * 1024  # as PUT /api/v1/secrets/{name}


def _page(request: Request, session: Session, viewer: Viewer, *, status_code: int = 200,
          error: str | None = None, name: str = "", replace: str | None = None,
          flash_: dict[str, str] | None = None) -> Response:
    secrets = secret_service.list_details(session, workspace_id=viewer.workspace_id)
    known = {s.name for s in secrets}
    ctx: dict[str, Any] = {
        "nav": sub_nav(viewer), "settings_section": "secrets", "rule": ROLE_RULES["secrets"],
        "secrets": secrets,
        "used_by": provider_service.secrets_in_use(session, workspace_id=viewer.workspace_id),
        "error": error, "form_name": name or (replace if replace in known else ""),
        "flash": flash_,
    }
    return render(request, "settings/secrets.html", ctx, status_code=status_code)


@router.get("/settings/secrets", name="settings:secrets")
def secrets_page(request: Request, session: SessionDep, viewer: ViewerDep,
                 notice: str | None = None, subject: str | None = None,
                 replace: str | None = None) -> Response:
    return _page(request, session, viewer, replace=replace, flash_=flash(notice, subject))


@router.post("/settings/secrets", name="settings:secrets_put")
def put_secret(request: Request, session: SessionDep, runtime: RuntimeDep,
               viewer: OperatorDep, form: FormDep) -> Response:
    name = str(form.get("name") or "").strip()[:200]
    try:
        name = text_field(form, "name", max_length=128)
        # The value is never stripped, echoed or logged: it goes straight to the cipher.
        value = text_field(form, "value", max_length=MAX_VALUE, strip=False)
        secret_service.put(session, workspace_id=viewer.workspace_id, name=name, value=value,
                           cipher=runtime.cipher, now=runtime.clock(),
                           actor=viewer.principal.actor)
    except InvalidInput as exc:
        session.rollback()
        shown = name if secret_service.NAME_RE.match(name) else ""
        return _page(request, session, viewer, status_code=422, error=exc.detail, name=shown)
    return done(PATH, "secret_saved", name)


@router.post("/settings/secrets/{name}/delete", name="settings:secrets_delete")
def delete_secret(name: str, session: SessionDep, runtime: RuntimeDep, viewer: OperatorDep,
                  _form: FormDep) -> Response:
    secret_service.delete(session, workspace_id=viewer.workspace_id, name=name,
                          now=runtime.clock(), actor=viewer.principal.actor)
    return done(PATH, "secret_deleted", name)
