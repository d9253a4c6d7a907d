"""A small, fully known workspace history for page and browser tests.

Everything is made by the real services and worker with the clock set back, so rows look
exactly like production data. `seed()` returns the ids; the counts below are what every
filter must show (they are asserted by tests/web/pages/test_seed.py, so a change here that
breaks them fails loudly rather than silently shifting other tests).

Runs, newest first (age → workflow, contact → status):
    5 min   nurture        linus    RUNNING   (parked in WAIT for 3 days)
   15 min   lead-check     ada      COMPLETED (INTEGRATION; only when an http_url is given)
   20 min   nurture        ada      RUNNING   (parked in WAIT)
   30 min   payment-failed linus    FAILED    ("Card ending 4242 was declined for linus@…")
   45 min   welcome        linus    COMPLETED (email SUPPRESSED: linus unsubscribed)
    1 h     welcome        ada      COMPLETED (email DELIVERED by callback)
    2 h     welcome        ada      COMPLETED (email SENT)
    4 h     nurture        grace    CANCELED  (by olga@acme.test: wrong audience)
    3 d     welcome        grace    COMPLETED (email BOUNCED by callback)
   10 d     payment-failed grace    FAILED
   40 d     welcome        ada      COMPLETED (outside 30d)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from relayflow.services import callback as callback_service
from relayflow.services import contact as contact_service
from relayflow.services import run as run_service
from relayflow.services import workflow as workflow_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import DeliveryAttempt
from tests.support.flows import set_secret
from tests.support.worker import drain

# A contact attribute that would run if any page rendered it unescaped.
XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'

CONTACTS: dict[str, dict[str, Any]] = {
    "ada": {"email": "ada@example.com", "phone": "+14155550101",
            "attributes": {"first_name": "Ada", "plan": "pro"}},
    "grace": {"email": "grace@example.com", "phone": "+442071838750",
              "attributes": {"first_name": "Grace", "plan": "free",
                             "note": XSS}},
    "linus": {"email": "linus@example.com",
              "attributes": {"first_name": "Linus", "plan": "starter", "card": "4242"}},
}

WORKFLOWS: dict[str, dict[str, Any]] = {
    "welcome": {
        "key": "welcome", "name": "Welcome email", "trigger": {"type": "manual"},
        "start": "send", "nodes": {
            "send": {"type": "SEND_MESSAGE", "channel": "email",
                     "subject": "Welcome, {{ contact.first_name }}",
                     "body": "Hello {{ contact.first_name }}, glad you are here.",
                     "next": "done"},
            "done": {"type": "END"}}},
    "payment-failed": {
        "key": "payment-failed", "name": "Payment failed", "trigger": {"type": "manual"},
        "start": "check", "nodes": {
            "check": {"type": "CONDITION", "when": "contact.plan == 'pro'",
                      "then": "done", "else": "stop"},
            "stop": {"type": "STOP_ERROR",
                     "message": "Card ending {{ contact.card | default('0000') }} was "
                                "declined for {{ contact.email }}"},
            "done": {"type": "END"}}},
    "nurture": {
        "key": "nurture", "name": "Nurture drip", "trigger": {"type": "manual"},
        "start": "hello", "nodes": {
            "hello": {"type": "UPDATE_CONTACT", "set": {"stage": "nurture"}, "next": "pause"},
            "pause": {"type": "WAIT", "duration": "3d", "next": "done"},
            "done": {"type": "END"}}},
}


def lead_check(http_url: str) -> dict[str, Any]:
    return {
        "key": "lead-check", "name": "Lead check", "trigger": {"type": "manual"},
        "start": "lookup", "nodes": {
            "lookup": {"type": "INTEGRATION",
                       "request": {"method": "POST", "url": f"{http_url}/echo",
                                   "headers": {"Authorization": "Bearer {{ secrets.CRM_TOKEN }}"},
                                   "body": {"email": "{{ contact.email }}"}},
                       "capture": {"seen": "body.body"}, "next": "done"},
            "done": {"type": "END"}}}


CRM_TOKEN = "crm-canary-7f3a9c"


@dataclass
class Seeded:
    now: datetime
    contacts: dict[str, uuid.UUID] = field(default_factory=dict)
    runs: dict[str, uuid.UUID] = field(default_factory=dict)
    attempts: dict[str, uuid.UUID] = field(default_factory=dict)


def _at(runtime: Runtime, when: datetime, work: Callable[[], None]) -> None:
    real = runtime.clock
    runtime.clock = lambda: when  # type: ignore[method-assign]
    try:
        work()
        drain(runtime)
    finally:
        runtime.clock = real  # type: ignore[method-assign]


def seed(runtime: Runtime, workspace_id: uuid.UUID, *, http_url: str | None = None) -> Seeded:
    now = datetime.now(UTC).replace(microsecond=0)
    out = Seeded(now=now)
    definitions = list(WORKFLOWS.values()) + ([lead_check(http_url)] if http_url else [])
    if http_url:
        set_secret(runtime, workspace_id, "CRM_TOKEN", CRM_TOKEN)
    with session_scope(runtime.sessions) as session:
        for definition in definitions:
            workflow_service.save(session, workspace_id=workspace_id, definition=definition,
                                  now=now - timedelta(days=60))
            workflow_service.activate(session, workspace_id=workspace_id,
                                      key=definition["key"], actor="seed",
                                      now=now - timedelta(days=60))
        for name, spec in CONTACTS.items():
            contact = contact_service.resolve(session, workspace_id=workspace_id, spec=spec,
                                              now=now - timedelta(days=60))
            out.contacts[name] = contact.id

    def start(label: str, key: str, who: str, ago: timedelta) -> None:
        def work() -> None:
            with session_scope(runtime.sessions) as session:
                workflow = workflow_service.get(session, workspace_id=workspace_id, key=key)
                contact = contact_service.get(session, workspace_id=workspace_id,
                                              contact_id=out.contacts[who])
                enrolled = run_service.enroll(session, workflow=workflow, contact=contact,
                                              trigger_type="manual",
                                              event={"source": "seed", "label": label},
                                              now=now - ago)
                out.runs[label] = enrolled.run.id
        _at(runtime, now - ago, work)

    start("welcome_ada_old", "welcome", "ada", timedelta(days=40))
    start("payment_grace", "payment-failed", "grace", timedelta(days=10))
    start("welcome_grace", "welcome", "grace", timedelta(days=3))
    start("nurture_grace", "nurture", "grace", timedelta(hours=4))
    start("welcome_ada_2h", "welcome", "ada", timedelta(hours=2))
    start("welcome_ada_1h", "welcome", "ada", timedelta(hours=1))
    with session_scope(runtime.sessions) as session:
        contact = contact_service.get(session, workspace_id=workspace_id,
                                      contact_id=out.contacts["linus"])
        contact.suppressed = {"email": "unsubscribed"}
    start("welcome_linus", "welcome", "linus", timedelta(minutes=45))
    start("payment_linus", "payment-failed", "linus", timedelta(minutes=30))
    start("nurture_ada", "nurture", "ada", timedelta(minutes=20))
    if http_url:
        start("lead_ada", "lead-check", "ada", timedelta(minutes=15))
    start("nurture_linus", "nurture", "linus", timedelta(minutes=5))

    with session_scope(runtime.sessions) as session:
        run_service.cancel(session, workspace_id=workspace_id, run_id=out.runs["nurture_grace"],
                           actor="olga@acme.test", now=now - timedelta(hours=3),
                           reason="wrong audience")
        attempts = {a.run_id: a for a in session.scalars(
            select(DeliveryAttempt).where(DeliveryAttempt.workspace_id == workspace_id))}
        for label in ("welcome_ada_old", "welcome_grace", "welcome_ada_2h", "welcome_ada_1h",
                      "welcome_linus"):
            out.attempts[label] = attempts[out.runs[label]].id
        callback_service.apply_event(
            session, workspace_id=workspace_id, channel="email",
            event={"type": "delivered", "attempt_id": str(out.attempts["welcome_ada_1h"])},
            now=now - timedelta(minutes=50))
        callback_service.apply_event(
            session, workspace_id=workspace_id, channel="email",
            event={"type": "bounced", "bounce": "hard",
                   "attempt_id": str(out.attempts["welcome_grace"])},
            now=now - timedelta(days=3) + timedelta(minutes=2))
    return out
