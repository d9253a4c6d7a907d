from __future__ import annotations

import re
import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from relayflow.errors import Conflict, InvalidInput, NotFound
from relayflow.services import audit as audit_service
from relayflow.services import auth
from relayflow.storage.models import Workspace
from relayflow.storage.repositories import workspace as workspace_repo

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def create(session: Session, *, slug: str, name: str | None, now: datetime) -> tuple[
    Workspace, str
]:
    """A workspace and its first admin API key (returned once)."""
    if not SLUG_RE.match(slug):
        raise InvalidInput("slug must be lower-case letters, digits and '-'")
    if workspace_repo.get_by_slug(session, slug) is not None:
        raise Conflict(f"workspace {slug!r} already exists")
    workspace = workspace_repo.add(
        session, Workspace(slug=slug, name=name or slug, created_at=now)
    )
    _, key = auth.create_api_key(
        session, workspace_id=workspace.id, role="admin", created_by="cli", now=now,
        name="initial admin key",
    )
    return workspace, key


def get_by_slug(session: Session, slug: str) -> Workspace:
    workspace = workspace_repo.get_by_slug(session, slug)
    if workspace is None:
        raise NotFound(f"no workspace {slug!r}")
    return workspace


def audit(
    session: Session, *, workspace_id: uuid.UUID, actor: str, action: str, target_type: str,
    target_id: str, now: datetime, detail: dict[str, object] | None = None,
) -> None:
    """Record an audit event (see services.audit)."""
    audit_service.record(session, workspace_id=workspace_id, actor=actor, action=action,
                         target_type=target_type, target_id=target_id, now=now, detail=detail)
