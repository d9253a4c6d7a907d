"""Settings → Frequency caps: the most messages one contact gets per channel per UTC day.

Edits the same caps as PUT /api/v1/settings/frequency-caps, through the same service
function (same validation, same `frequency.set` audit event)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from relayflow.errors import InvalidInput
from relayflow.services import frequency as frequency_service
from relayflow.services.login import Viewer
from relayflow.web.deps import RuntimeDep, SessionDep
from relayflow.web.pages.deps import AdminDep, FormDep, ViewerDep
from relayflow.web.pages.settings_common import ROLE_RULES, done, flash, sub_nav, text_field
from relayflow.web.pages.templating import render

router = APIRouter()
PATH = "/settings/frequency-caps"


def _page(request: Request, session: Session, viewer: Viewer, *, status_code: int = 200,
          problems: list[str] | None = None, submitted: dict[str, str] | None = None,
          flash_: dict[str, str] | None = None) -> Response:
    caps = frequency_service.show(session, workspace_id=viewer.workspace_id)
    values = submitted if submitted is not None else {c: str(n) for c, n in caps.items()}
    ctx: dict[str, Any] = {
        "nav": sub_nav(viewer), "settings_section": "frequency", "rule": ROLE_RULES["frequency"],
        "channels": frequency_service.CHANNELS, "caps": caps, "values": values,
        "problems": problems or [], "flash": flash_, "max_cap": frequency_service.MAX_CAP,
    }
    return render(request, "settings/frequency.html", ctx, status_code=status_code)


@router.get(PATH, name="settings:frequency")
def frequency_page(request: Request, session: SessionDep, viewer: ViewerDep,
                   notice: str | None = None, subject: str | None = None) -> Response:
    return _page(request, session, viewer, flash_=flash(notice, subject))


def _parsed(values: dict[str, str]) -> dict[str, Any]:
    """Form text to the API's shape: empty is no cap, digits a number, the rest as typed
    (so the service names it)."""
    return {c: (None if not v else int(v) if v.isdigit() and len(v) < 8 else v)
            for c, v in values.items()}


@router.post(PATH, name="settings:frequency_put")
def put_frequency(request: Request, session: SessionDep, runtime: RuntimeDep,
                  viewer: AdminDep, form: FormDep) -> Response:
    values = {c: str(form.get(c) or "")[:20] for c in frequency_service.CHANNELS}
    try:
        values = {c: text_field(form, c, max_length=20) for c in frequency_service.CHANNELS}
        stored = frequency_service.put(session, workspace_id=viewer.workspace_id,
                                       caps=_parsed(values), now=runtime.clock(),
                                       actor=viewer.principal.actor)
    except InvalidInput as exc:
        session.rollback()
        problems = getattr(exc, "problems", None) or [exc.detail]
        return _page(request, session, viewer, status_code=422, problems=problems,
                     submitted=values)
    return done(PATH, "frequency_saved", str(len(stored)))
