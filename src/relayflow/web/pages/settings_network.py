"""Settings → Network: which private targets this workspace's outbound requests may reach.

The page edits the same list as PUT /api/v1/settings/network, through the same service
function (same validation, same `network.set` audit event); the instance's
RELAYFLOW_NETWORK_ALLOW is shown read-only, since it is set where the server starts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from relayflow.delivery.egress import AllowList
from relayflow.errors import InvalidInput
from relayflow.services import network as network_service
from relayflow.services.login import Viewer
from relayflow.web.deps import RuntimeDep, SessionDep
from relayflow.web.pages.deps import AdminDep, FormDep, ViewerDep
from relayflow.web.pages.settings_common import ROLE_RULES, done, flash, sub_nav, text_field
from relayflow.web.pages.templating import render

router = APIRouter()
PATH = "/settings/network"
MAX_FORM = 100 * 300  # MAX_ENTRIES lines of a long host name


def instance_entries(allow: AllowList) -> list[str]:
    return [str(n) for n in allow.networks] + sorted(allow.names)


def _page(request: Request, session: Session, viewer: Viewer, runtime: RuntimeDep, *,
          status_code: int = 200, problems: list[str] | None = None,
          submitted: str | None = None, flash_: dict[str, str] | None = None) -> Response:
    own = network_service.show(session, workspace_id=viewer.workspace_id)
    ctx: dict[str, Any] = {
        "nav": sub_nav(viewer), "settings_section": "network", "rule": ROLE_RULES["network"],
        "own": own, "instance": instance_entries(runtime.network_allow),
        "text": submitted if submitted is not None else "\n".join(own),
        "problems": problems or [], "flash": flash_,
        "max_entries": network_service.MAX_ENTRIES,
    }
    return render(request, "settings/network.html", ctx, status_code=status_code)


@router.get(PATH, name="settings:network")
def network_page(request: Request, session: SessionDep, runtime: RuntimeDep,
                 viewer: ViewerDep, notice: str | None = None,
                 subject: str | None = None) -> Response:
    return _page(request, session, viewer, runtime, flash_=flash(notice, subject))


@router.post(PATH, name="settings:network_put")
def put_network(request: Request, session: SessionDep, runtime: RuntimeDep,
                viewer: AdminDep, form: FormDep) -> Response:
    text = ""
    try:
        text = text_field(form, "allow", max_length=MAX_FORM)
        entries = [line.strip() for line in text.splitlines() if line.strip()]
        stored = network_service.put(session, workspace_id=viewer.workspace_id,
                                     allow=entries, now=runtime.clock(),
                                     actor=viewer.principal.actor)
    except network_service.InvalidNetworkSettings as exc:
        session.rollback()
        return _page(request, session, viewer, runtime, status_code=422,
                     problems=exc.problems, submitted=text)
    except InvalidInput as exc:
        session.rollback()
        return _page(request, session, viewer, runtime, status_code=422,
                     problems=[exc.detail], submitted="")
    return done(PATH, "network_saved", str(len(stored)))
