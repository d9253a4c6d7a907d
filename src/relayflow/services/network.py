"""A workspace's network settings: which private targets its outbound requests may reach.

By default INTEGRATION requests, HTTP providers and SMTP hosts refuse loopback, private, link-local,
unique-local, multicast and reserved addresses (delivery/egress.py). The instance's
RELAYFLOW_NETWORK_ALLOW applies to every workspace; a workspace's own list adds to it for
that workspace only."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from relayflow.delivery import egress
from relayflow.delivery.egress import AllowList
from relayflow.errors import InvalidInput
from relayflow.services import workspace as workspace_service
from relayflow.storage.models import NetworkSetting
from relayflow.storage.repositories import network as network_repo

MAX_ENTRIES = 100


class InvalidNetworkSettings(InvalidInput):
    """The network settings are invalid."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"The allow-list has {len(problems)} invalid entr"
                         f"{'y' if len(problems) == 1 else 'ies'}.")

    def extra(self) -> dict[str, Any]:
        return {"problems": list(self.problems)}


def show(session: Session, *, workspace_id: uuid.UUID) -> list[str]:
    """The workspace's own allow-list entries (empty until set)."""
    row = network_repo.get_or_none(session, workspace_id)
    return list(row.allow) if row is not None else []


def put(session: Session, *, workspace_id: uuid.UUID, allow: Any, now: datetime,
        actor: str = "system") -> list[str]:
    """Validate and replace the workspace's allow-list; returns the entries as stored."""
    if not isinstance(allow, list) or not all(isinstance(e, str) for e in allow):
        raise InvalidNetworkSettings(["allow: a list of CIDRs and host names"])
    if len(allow) > MAX_ENTRIES:
        raise InvalidNetworkSettings([f"allow: at most {MAX_ENTRIES} entries"])
    try:
        egress.AllowList.parse(allow)
    except egress.InvalidAllowList as exc:
        raise InvalidNetworkSettings(exc.problems) from exc
    stored = egress.normalized(allow)
    row = network_repo.get_or_none(session, workspace_id)
    if row is None:
        network_repo.add(session, NetworkSetting(workspace_id=workspace_id, allow=stored,
                                                 updated_at=now))
    else:
        row.allow = stored
        row.updated_at = now
    workspace_service.audit(session, workspace_id=workspace_id, actor=actor,
                            action="network.set", target_type="network",
                            target_id="allow", now=now, detail={"allow": stored})
    return stored


def allow_list(session: Session, *, workspace_id: uuid.UUID,
               instance: AllowList) -> AllowList:
    """What a workspace's outbound requests may reach: the instance's list and its own."""
    own = show(session, workspace_id=workspace_id)
    if not own:
        return instance
    try:
        return instance | AllowList.parse(own)
    except egress.InvalidAllowList:  # stored before a stricter parser: ignore, never widen
        return instance
