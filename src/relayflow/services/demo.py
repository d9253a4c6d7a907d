"""The demo workspace: sample workflows, contacts and a month of runs of every status.

History is made by the real orchestrator: runs are opened and walked with the clock set
back to each past day, so every row looks exactly like production data.
"""

from __future__ import annotations

import random
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from relayflow.engine.graph import parse_definition
from relayflow.services import auth, callback, delivery_ops, walk
from relayflow.services import contact as contact_service
from relayflow.services import run as run_service
from relayflow.services import workflow as workflow_service
from relayflow.services import workspace as workspace_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.repositories import workspace as workspace_repo

SLUG = "demo"
WORKFLOWS = Path(__file__).parent / "demo_workflows"
FIRST = ["Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Ken", "Radia", "Edsger",
         "Frances", "Dennis", "Hedy", "Tim", "Katherine", "John", "Sophie"]
PLANS = ["free", "free", "starter", "pro", "pro"]


# Signs in to the web UI; the password is new on every `relayflow demo`, like the key.
DEMO_MEMBERS = (("demo@example.com", "admin"), ("viewer@example.com", "viewer"))


@dataclass(frozen=True, slots=True)
class DemoResult:
    created: bool
    api_key: str
    runs: int
    password: str = ""
    logins: tuple[tuple[str, str], ...] = ()


def _reset_members(session: Session, workspace_id: uuid.UUID, now: datetime) -> str:
    """Give the demo members a fresh password (creating them if missing) and return it."""
    password = secrets.token_urlsafe(9)
    for email, role in DEMO_MEMBERS:
        member = workspace_repo.get_member(session, workspace_id, email)
        if member is None:
            auth.add_member(session, workspace_id=workspace_id, email=email, role=role,
                            password=password, now=now, actor="demo")
        else:
            auth.set_password(member, password)
    return password


def _drain(runtime: Runtime) -> None:
    while walk.advance(runtime, worker="demo-seed", limit=64, lease_seconds=60):
        pass


def ensure(runtime: Runtime, *, days: int = 30, runs_per_day: int = 14,
           seed: int = 7) -> DemoResult:
    """Create and fill the demo workspace if missing; always issue a fresh demo API key
    (earlier demo keys are revoked, so no key has to be stored in plain text)."""
    real_clock = runtime.clock
    now = real_clock()
    with session_scope(runtime.sessions) as session:
        existing = workspace_repo.get_by_slug(session, SLUG)
        if existing is not None:
            for key in workspace_repo.list_api_keys(session, existing.id):
                if key.name == "demo key" and key.revoked_at is None:
                    key.revoked_at = now
            _, api_key = auth.create_api_key(session, workspace_id=existing.id, role="admin",
                                             created_by="demo", now=now, name="demo key")
            password = _reset_members(session, existing.id, now)
            return DemoResult(False, api_key, 0, password, DEMO_MEMBERS)
        workspace, _ = workspace_service.create(session, slug=SLUG, name="Demo workspace",
                                                now=now - timedelta(days=days + 1))
        workspace_id = workspace.id
        _, api_key = auth.create_api_key(session, workspace_id=workspace_id, role="admin",
                                         created_by="demo", now=now, name="demo key")
        password = _reset_members(session, workspace_id, now)
        for path in sorted(WORKFLOWS.glob("*.yaml")):
            definition = parse_definition(path.read_text(), content_type="yaml")
            workflow_service.save(session, workspace_id=workspace_id, definition=definition,
                                  now=now - timedelta(days=days + 1))
            workflow_service.activate(session, workspace_id=workspace_id,
                                      key=definition["key"], actor="demo", now=now)
    rng = random.Random(seed)
    keys = ["onboarding", "renewal-reminder", "lead-score"]
    total = 0
    reported: set[uuid.UUID] = set()
    try:
        for day in range(days, -1, -1):
            at = now - timedelta(days=day, hours=rng.randint(0, 8))
            runtime.clock = lambda at=at: at  # type: ignore[misc]
            with session_scope(runtime.sessions) as session:
                for i in range(runs_per_day):
                    n = rng.randint(0, 199)
                    contact = contact_service.resolve(session, workspace_id=workspace_id, spec={
                        "email": f"{FIRST[n % len(FIRST)].lower()}.{n}@example.com",
                        "attributes": _attributes(rng, n)}, now=at)
                    workflow = workflow_service.get(session, workspace_id=workspace_id,
                                                    key=keys[(i + day) % len(keys)])
                    run_service.enroll(session, workflow=workflow, contact=contact,
                                       trigger_type="manual", event={"source": "demo"},
                                       now=at - timedelta(minutes=runs_per_day - i))
                    total += 1
            _drain(runtime)
            _provider_events(runtime, workspace_id, rng, reported)
    finally:
        runtime.clock = real_clock
    _drain(runtime)  # waits whose time has come
    _cancel_some(runtime, workspace_id)
    _fix_and_retry(runtime, workspace_id)
    return DemoResult(True, api_key, total, password, DEMO_MEMBERS)


def _provider_events(runtime: Runtime, workspace_id: uuid.UUID, rng: random.Random,
                     reported: set[uuid.UUID]) -> None:
    """What a real email provider reports back: most messages delivered, a few hard
    bounces (whose contacts are then suppressed), some never confirmed."""
    now = runtime.clock()
    with session_scope(runtime.sessions) as session:
        page = delivery_ops.search(session, workspace_id=workspace_id, limit=200, now=now,
                                   query=delivery_ops.DeliveryQuery(status="SENT"))
        for row in page.rows:
            attempt = row.attempt
            if attempt.id in reported:
                continue
            reported.add(attempt.id)
            roll = rng.random()
            event: dict[str, str] | None = None
            if roll < 0.84:
                event = {"type": "delivered", "attempt_id": str(attempt.id)}
            elif roll < 0.89:
                event = {"type": "bounced", "bounce": "hard", "attempt_id": str(attempt.id)}
            if event is not None:
                callback.apply_event(session, workspace_id=workspace_id,
                                     channel=attempt.channel, event=event, now=now)


def _attributes(rng: random.Random, n: int) -> dict[str, str]:
    attributes = {"first_name": FIRST[n % len(FIRST)], "plan": PLANS[n % len(PLANS)]}
    if rng.random() < 0.7:
        attributes["card_last4"] = f"{rng.randint(0, 9999):04d}"
    return attributes


def _cancel_some(runtime: Runtime, workspace_id: object) -> None:
    from relayflow.storage.repositories.run import RunFilter

    now = runtime.clock()
    with session_scope(runtime.sessions) as session:
        page = run_service.list_page(
            session, run_filter=RunFilter(workspace_id=workspace_id,  # type: ignore[arg-type]
                                          statuses=("RUNNING",)),
            limit=200, cursor=None)
        for row in page.rows[::2]:
            run_service.cancel(session, workspace_id=row.run.workspace_id, run_id=row.run.id,
                               actor="demo@example.com", now=now,
                               reason="the contact asked support to stop these e-mails")


RENEWAL = "renewal-reminder"
FIX = "Your card ending {{ contact.card_last4 | default('on file') }} will be charged next week."


def _fix_and_retry(runtime: Runtime, workspace_id: uuid.UUID) -> None:
    """What an operator does about last month's failures: a renewal reminder failed for
    every contact without `card_last4`; the fix is saved as version 2, two of the failed
    runs are retried by hand on version 1 (and fail again), then a bulk retry runs all the
    runs of that cause on version 2. The free-plan refusals are left as they are."""
    from relayflow.services import bulk
    from relayflow.storage.repositories.run import RunFilter

    now = runtime.clock()
    with session_scope(runtime.sessions) as session:
        workflow = workflow_service.get(session, workspace_id=workspace_id, key=RENEWAL)
        failed = run_service.list_page(session, run_filter=RunFilter(
            workspace_id=workspace_id, statuses=("FAILED",), workflow_id=workflow.id),
            limit=200, cursor=None).rows
        undefined = [row.run for row in failed if (row.run.error or "").find("card_last4") >= 0]
        if not undefined or undefined[0].fingerprint is None:
            return
        definition = parse_definition((WORKFLOWS / "renewal.yaml").read_text(),
                                      content_type="yaml")
        definition["nodes"]["remind"]["body"] = FIX
        workflow_service.save(session, workspace_id=workspace_id, definition=definition,
                              now=now)
        for run in undefined[:2]:
            run_service.retry(session, workspace_id=workspace_id, run_id=run.id,
                              actor="demo@example.com", now=now, version="original")
    _drain(runtime)
    with session_scope(runtime.sessions) as session:
        operation = bulk.create(
            session, workspace_id=workspace_id, actor="demo@example.com", now=now, rate=1000,
            request=bulk.spec(action="retry", version="current",
                              filter={"status": "FAILED", "fingerprint": undefined[0].fingerprint},
                              reason="card_last4 has a default since version 2"))
        operation_id = operation.id
    while True:
        if not bulk.advance(runtime, worker="demo-seed"):
            with session_scope(runtime.sessions) as session:
                if bulk.get(session, workspace_id=workspace_id,
                            operation_id=operation_id).status != "RUNNING":
                    break
            time.sleep(0.01)  # ahead of its pace
    _drain(runtime)

