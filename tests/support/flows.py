"""Helpers to put workflows in place and start runs through the real services."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from relayflow.services import contact as contact_service
from relayflow.services import run as run_service
from relayflow.services import secret as secret_service
from relayflow.services import workflow as workflow_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import read_scope, session_scope
from relayflow.storage.models import DeliveryAttempt, RunStep, WorkflowRun


def now() -> datetime:
    return datetime.now(UTC)


def install(runtime: Runtime, workspace_id: uuid.UUID, definition: dict[str, Any],
            *, activate: bool = True) -> None:
    with session_scope(runtime.sessions) as session:
        workflow_service.save(session, workspace_id=workspace_id, definition=definition,
                              now=runtime.clock())
        if activate:
            workflow_service.activate(session, workspace_id=workspace_id,
                                      key=definition["key"], actor="test", now=runtime.clock())


def call_then_mail(url: str) -> dict[str, Any]:
    """A manual workflow `pair`: an INTEGRATION POST to `url`, then an e-mail, then END."""
    return {"key": "pair", "trigger": {"type": "manual"}, "start": "call", "nodes": {
        "call": {"type": "INTEGRATION", "request": {"method": "POST", "url": url},
                 "next": "mail"},
        "mail": {"type": "SEND_MESSAGE", "channel": "email", "subject": "Hello",
                 "body": "Once only", "next": "done"},
        "done": {"type": "END"}}}


def set_secret(runtime: Runtime, workspace_id: uuid.UUID, name: str, value: str) -> None:
    with session_scope(runtime.sessions) as session:
        secret_service.put(session, workspace_id=workspace_id, name=name, value=value,
                           cipher=runtime.cipher, now=runtime.clock())


def start(runtime: Runtime, workspace_id: uuid.UUID, key: str, *, email: str | None = None,
          attributes: dict[str, Any] | None = None, event: dict[str, Any] | None = None,
          count: int = 1) -> list[uuid.UUID]:
    ids = []
    with session_scope(runtime.sessions) as session:
        workflow = workflow_service.get(session, workspace_id=workspace_id, key=key)
        for i in range(count):
            contact = None
            if email is not None:
                address = email if count == 1 else email.replace("@", f"+{i}@")
                contact = contact_service.resolve(session, workspace_id=workspace_id, spec={
                    "email": address, "attributes": attributes or {}}, now=runtime.clock())
            enrolled = run_service.enroll(session, workflow=workflow, contact=contact,
                                          trigger_type="manual", event=event or {},
                                          now=runtime.clock())
            ids.append(enrolled.run.id)
    return ids


def run_of(runtime: Runtime, run_id: uuid.UUID) -> WorkflowRun:
    with session_scope(runtime.sessions) as session:
        run = session.get(WorkflowRun, run_id)
        assert run is not None
        return run


def steps_of(runtime: Runtime, run_id: uuid.UUID) -> list[RunStep]:
    with session_scope(runtime.sessions) as session:
        return list(session.scalars(select(RunStep).where(RunStep.run_id == run_id)
                                    .order_by(RunStep.seq)))


def attempts_of(runtime: Runtime, run_id: uuid.UUID) -> list[DeliveryAttempt]:
    with session_scope(runtime.sessions) as session:
        return list(session.scalars(select(DeliveryAttempt)
                                    .where(DeliveryAttempt.run_id == run_id)))


def statuses(runtime: Runtime) -> dict[str, int]:
    with read_scope(runtime.sessions) as session:  # never queues behind the workers
        out: dict[str, int] = {}
        for status in session.scalars(select(WorkflowRun.status)):
            out[status] = out.get(status, 0) + 1
        return out


def set_provider(runtime: Runtime, workspace_id: uuid.UUID, channel: str,
                 config: dict[str, Any]) -> None:
    """Store a provider configuration directly (the API's validation is tested elsewhere)."""
    from relayflow.delivery.config import parse, to_dict
    from relayflow.storage.models import Provider

    with session_scope(runtime.sessions) as session:
        session.add(Provider(workspace_id=workspace_id, channel=channel,
                             config=to_dict(parse(channel, config)), created_at=now(),
                             updated_at=now()))


def suppress(runtime: Runtime, email: str, channel: str, reason: str) -> None:
    from relayflow.storage.models import Contact

    with session_scope(runtime.sessions) as session:
        contact = session.scalar(select(Contact).where(Contact.email == email))
        assert contact is not None
        contact.suppressed = {**contact.suppressed, channel: reason}
