"""Settings → API keys and Members: who and what can reach this workspace."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from relayflow.errors import Conflict, InvalidInput
from relayflow.services import auth as auth_service
from relayflow.services import member as member_service
from relayflow.services.login import Viewer
from relayflow.web.deps import RuntimeDep, SessionDep
from relayflow.web.pages.deps import AdminDep, FormDep, ViewerDep
from relayflow.web.pages.settings_common import ROLE_RULES, done, flash, sub_nav, text_field
from relayflow.web.pages.templating import render

router = APIRouter()
KEYS = "/settings/keys"
MEMBERS = "/settings/members"
ROLE_HELP = {
    "admin": "everything, including providers, API keys and members",
    "operator": "read, trigger, cancel, retry, change workflows and secrets",
    "viewer": "read only",
}


# --- API keys (admins only, as GET/POST/DELETE /api/v1/keys) ---------------------------


def _keys_page(request: Request, session: Session, viewer: Viewer, *, status_code: int = 200,
               created: dict[str, Any] | None = None, error: str | None = None,
               form: dict[str, str] | None = None, flash_: dict[str, str] | None = None
               ) -> Response:
    keys = auth_service.list_api_keys(session, workspace_id=viewer.workspace_id)
    ctx = {"nav": sub_nav(viewer), "settings_section": "keys", "rule": ROLE_RULES["keys"],
           "keys": list(reversed(keys)), "roles": ROLE_HELP, "created": created,
           "error": error, "form": form or {"name": "", "role": "operator"}, "flash": flash_}
    return render(request, "settings/keys.html", ctx, status_code=status_code)


@router.get("/settings/keys", name="settings:keys")
def keys_page(request: Request, session: SessionDep, viewer: AdminDep,
              notice: str | None = None, subject: str | None = None) -> Response:
    return _keys_page(request, session, viewer, flash_=flash(notice, subject))


@router.post("/settings/keys", name="settings:keys_create")
def create_key(request: Request, session: SessionDep, runtime: RuntimeDep, viewer: AdminDep,
               form: FormDep) -> Response:
    """The full key is in this response only (200, no-store): never in a URL or a redirect."""
    name, role = str(form.get("name") or "")[:200], str(form.get("role") or "")
    try:
        name = text_field(form, "name", max_length=auth_service.MAX_NAME)
        key, full = auth_service.create_api_key(
            session, workspace_id=viewer.workspace_id, role=role, name=name,
            created_by=viewer.principal.actor, now=runtime.clock())
    except InvalidInput as exc:
        session.rollback()
        return _keys_page(request, session, viewer, status_code=422, error=exc.detail,
                          form={"name": name, "role": role})
    created = {"prefix": key.prefix, "name": key.name, "role": key.role, "api_key": full}
    response = _keys_page(request, session, viewer, created=created)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@router.post("/settings/keys/{prefix}/revoke", name="settings:keys_revoke")
def revoke_key(prefix: str, session: SessionDep, runtime: RuntimeDep, viewer: AdminDep,
               _form: FormDep) -> Response:
    key = auth_service.revoke_api_key(session, workspace_id=viewer.workspace_id, prefix=prefix,
                                      actor=viewer.principal.actor, now=runtime.clock())
    return done(KEYS, "key_revoked", key.prefix)


# --- members (everyone reads, admins change, as /api/v1/members) -----------------------


def _members_page(request: Request, session: Session, viewer: Viewer, *,
                  status_code: int = 200, error: str | None = None,
                  form: dict[str, str] | None = None, flash_: dict[str, str] | None = None,
                  list_error: str | None = None, reset: dict[str, str] | None = None
                  ) -> Response:
    members = auth_service.list_members(session, workspace_id=viewer.workspace_id)
    admins = [m.email for m in members if m.role == "admin"]
    ctx = {"nav": sub_nav(viewer), "settings_section": "members", "rule": ROLE_RULES["members"],
           "members": members, "roles": ROLE_HELP, "error": error,
           "form": form or {"email": "", "role": "viewer"}, "flash": flash_,
           "list_error": list_error, "reset": reset,
           # The last admin can be neither removed nor demoted: no buttons that would fail.
           "last_admin": admins[0] if len(admins) == 1 else None}
    return render(request, "settings/members.html", ctx, status_code=status_code)


@router.get("/settings/members", name="settings:members")
def members_page(request: Request, session: SessionDep, viewer: ViewerDep,
                 notice: str | None = None, subject: str | None = None) -> Response:
    return _members_page(request, session, viewer, flash_=flash(notice, subject))


@router.post("/settings/members", name="settings:members_add")
def add_member(request: Request, session: SessionDep, runtime: RuntimeDep, viewer: AdminDep,
               form: FormDep) -> Response:
    email, role = str(form.get("email") or "")[:320], str(form.get("role") or "")
    try:
        email = text_field(form, "email", max_length=320)
        # Never stripped or shown again; the service hashes it (argon2).
        password = text_field(form, "password", max_length=1024, strip=False)
        member = auth_service.add_member(session, workspace_id=viewer.workspace_id,
                                         email=email, role=role, password=password,
                                         now=runtime.clock(), actor=viewer.principal.actor)
    except (InvalidInput, Conflict) as exc:
        session.rollback()
        return _members_page(request, session, viewer, status_code=exc.status_code,
                             error=exc.detail, form={"email": email, "role": role})
    return done(MEMBERS, "member_added", member.email)


@router.post("/settings/members/{email:path}/role", name="settings:members_role")
def change_member_role(email: str, request: Request, session: SessionDep, runtime: RuntimeDep,
                       viewer: AdminDep, form: FormDep) -> Response:
    try:
        change = member_service.change_role(
            session, workspace_id=viewer.workspace_id, email=email,
            role=str(form.get("role") or ""), actor=viewer.principal.actor, now=runtime.clock())
    except (InvalidInput, Conflict) as exc:
        session.rollback()
        return _members_page(request, session, viewer, status_code=exc.status_code,
                             list_error=exc.detail)
    notice = "member_role_keys" if change.revoked_keys else "member_role"
    return done(MEMBERS, notice, change.member.email)


@router.post("/settings/members/{email:path}/remove", name="settings:members_remove")
def remove_member(email: str, request: Request, session: SessionDep, runtime: RuntimeDep,
                  viewer: AdminDep, _form: FormDep) -> Response:
    try:
        change = member_service.remove(session, workspace_id=viewer.workspace_id, email=email,
                                       actor=viewer.principal.actor, now=runtime.clock())
    except Conflict as exc:
        session.rollback()
        return _members_page(request, session, viewer, status_code=exc.status_code,
                             list_error=exc.detail)
    notice = "member_removed_keys" if change.revoked_keys else "member_removed"
    return done(MEMBERS, notice, change.member.email)


@router.post("/settings/members/{email:path}/password", name="settings:members_password")
def reset_member_password(email: str, request: Request, session: SessionDep,
                          runtime: RuntimeDep, viewer: AdminDep, _form: FormDep) -> Response:
    """The new password is in this response only (200, no-store): never in a URL."""
    change, password = member_service.reset_password(
        session, workspace_id=viewer.workspace_id, email=email, actor=viewer.principal.actor,
        now=runtime.clock())
    response = _members_page(request, session, viewer,
                             reset={"email": change.member.email, "password": password})
    response.headers["Referrer-Policy"] = "no-referrer"  # render() sets no-store already
    return response
