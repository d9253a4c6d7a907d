"""The demo workspace: sample workflows, contacts and a month of runs of every status.

History is made by the real orchestrator: runs are opened and walked with the clock set
back to each past day, so every row looks exactly like production data. Besides manual
runs: sign-ups posted to a signed webhook by a simulated website, which look accounts up
in a simulated CRM, text the contact through a simulated SMS gateway and start the
onboarding drip (services/demo_simulation.py), and a weekly schedule's ticks.
"""

from __future__ import annotations

import random
import secrets
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from relayflow.engine.graph import parse_definition
from relayflow.services import auth, callback, delivery_ops, demo_simulation, walk
from relayflow.services import contact as contact_service
from relayflow.services import run as run_service
from relayflow.services import schedule as schedule_service
from relayflow.services import workflow as workflow_service
from relayflow.services import workspace as workspace_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.repositories import workspace as workspace_repo

SLUG = "demo"
SCHEDULE = "weekly-report"
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
    """Walk every due run as the worker does, a batch's effects side by side."""
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="demo-effect") as pool:
        while walk.advance(runtime, worker="demo-seed", limit=64, lease_seconds=60,
                           pool=pool):
            pass


def ensure(runtime: Runtime, *, days: int = 30, runs_per_day: int = 14,
           seed: int = 7) -> DemoResult:
    """Create and fill the demo workspace if missing; always issue a fresh demo API key
    (earlier demo keys are revoked, so no key has to be stored in plain text)."""
    now = runtime.clock()
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
    signups = demo_simulation.plan(random.Random(seed + 1), days=days, names=FIRST,
                                   sms_attempts=runtime.delivery_max_attempts)
    with demo_simulation.started(signups) as simulation:
        demo = _create(runtime, simulation, created=now - timedelta(days=days + 1))
        try:
            total = _history(runtime, demo, signups, days=days, runs_per_day=runs_per_day,
                             seed=seed)
            _drain(runtime)  # waits whose time has come
            _cancel_some(runtime, demo.workspace_id)
            _fix_and_retry(runtime, demo.workspace_id)
            demo_simulation.resend_refused_sms(runtime, workspace_id=demo.workspace_id,
                                               signups=signups,
                                               attempts=runtime.delivery_max_attempts)
        finally:  # loopback is not left allowed, even if seeding failed
            with session_scope(runtime.sessions) as session:
                demo_simulation.dismantle(session, runtime, workspace_id=demo.workspace_id)
    return DemoResult(True, demo.api_key, total, demo.password, DEMO_MEMBERS)


@dataclass(frozen=True, slots=True)
class _Demo:
    workspace_id: uuid.UUID
    api_key: str = field(repr=False)
    password: str = field(repr=False)
    webhook_token: str = field(repr=False)  # of the sign-up workflow
    secret: str = field(repr=False)  # its signing secret, as only the website knows it
    schedule: dict[str, Any]  # the weekly report's trigger
    created: datetime


def _create(runtime: Runtime, simulation: demo_simulation.Simulation, *,
            created: datetime) -> _Demo:
    """The workspace, its members and key, the simulated services' settings, and the
    workflows, saved and activated when the history begins."""
    now = runtime.clock()
    with session_scope(runtime.sessions) as session:
        workspace, _ = workspace_service.create(session, slug=SLUG, name="Demo workspace",
                                                now=created)
        workspace_id = workspace.id
        _, api_key = auth.create_api_key(session, workspace_id=workspace_id, role="admin",
                                         created_by="demo", now=now, name="demo key")
        password = _reset_members(session, workspace_id, now)
        secret = demo_simulation.configure(session, runtime, workspace_id=workspace_id,
                                           simulation=simulation, now=created)
        # A workflow a TRIGGER_WORKFLOW node names must exist when that one is saved.
        texts = sorted(((path.read_text(), path.name) for path in WORKFLOWS.glob("*.yaml")),
                       key=lambda item: ("TRIGGER_WORKFLOW" in item[0], item[1]))
        definitions = {}
        for text, _ in texts:
            definition = parse_definition(text, content_type="yaml")
            if definition["key"] == demo_simulation.SIGNUP:
                definition = demo_simulation.definition(definition, simulation)
            definitions[definition["key"]] = definition
            workflow_service.save(session, workspace_id=workspace_id, definition=definition,
                                  now=created)
            # Active since the history began, so the schedule's past ticks are its own.
            workflow_service.activate(session, workspace_id=workspace_id,
                                      key=definition["key"], actor="demo", now=created)
        signup = workflow_service.get(session, workspace_id=workspace_id,
                                      key=demo_simulation.SIGNUP)
        assert signup.webhook_token is not None
        return _Demo(workspace_id, api_key, password, signup.webhook_token, secret,
                     dict(definitions[SCHEDULE]["trigger"]), created)


def _history(runtime: Runtime, demo: _Demo, signups: list[demo_simulation.Signup], *,
             days: int, runs_per_day: int, seed: int) -> int:
    """A month, a day at a time, with the clock set back to each: manual runs, the
    website's sign-ups, the weekly report's ticks and what the provider reported back."""
    real_clock = runtime.clock
    now = real_clock()
    rng = random.Random(seed)
    keys = ["onboarding", "renewal-reminder", "lead-score"]
    workspace_id = demo.workspace_id
    total = 0
    reported: set[uuid.UUID] = set()
    previous = demo.created
    runtime.clock = lambda created=demo.created: created  # type: ignore[misc]
    try:
        for day in range(days, -1, -1):
            at = now - timedelta(days=day, hours=rng.randint(0, 8))
            _fire_schedule(runtime, demo, after=previous, until=at)
            previous = at
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
            today = [s for s in signups if s.day == day]
            demo_simulation.post(runtime, token=demo.webhook_token, secret=demo.secret,
                                 signups=today)
            total += len(today)
            _drain(runtime)
            _later_that_day(runtime, demo, today, at=at, until=now)
            _provider_events(runtime, workspace_id, rng, reported)
    finally:
        runtime.clock = real_clock
    return total


def _fire_schedule(runtime: Runtime, demo: _Demo, *, after: datetime,
                   until: datetime) -> None:
    """The scheduler's ticks due after `after` up to `until`, each fired when it fell due
    (or as soon after as the clock allows: it never goes back)."""
    for due in schedule_service.next_fire_times(demo.schedule, now=after, count=3):
        if due > until:
            return
        fired = min(max(due + timedelta(seconds=15), runtime.clock()), until)
        runtime.clock = lambda fired=fired: fired  # type: ignore[misc]
        schedule_service.tick(runtime, now=fired, workspace_id=demo.workspace_id)
        _drain(runtime)


def _later_that_day(runtime: Runtime, demo: _Demo, today: list[demo_simulation.Signup], *,
                    at: datetime, until: datetime) -> None:
    """Half a minute on, the website sends again what got no answer in time (signed anew,
    same Idempotency-Key); then the SMS refused meanwhile are retried as they fall due
    (the k-th retry is due at most base·2^(k-1) after the one before it)."""
    again = min(at + timedelta(seconds=30), until)
    runtime.clock = lambda again=again: again  # type: ignore[misc]
    demo_simulation.post(runtime, token=demo.webhook_token, secret=demo.secret,
                         signups=[s for s in today if s.sent_twice])
    if not any(s.sms_failures for s in today):
        return
    base = timedelta(seconds=runtime.delivery_retry_base_seconds)
    for attempt in range(1, runtime.delivery_max_attempts):
        due = min(again + base * 2 ** attempt, until)
        runtime.clock = lambda due=due: due  # type: ignore[misc]
        _drain(runtime)


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

