"""The demo's outside world, simulated while `relayflow demo` makes the demo history.

- A website posts each sign-up to the `website-signup` webhook, signed with the workspace
  secret SIGNUP_WEBHOOK_SECRET, through the real intake (services/webhook.receive_many);
  a request that got no answer in time is sent again, signed anew, under the same
  Idempotency-Key (a duplicate the run counts).
- A CRM (`GET /crm/accounts?email=`) and an SMS gateway (`POST /sms/messages`) answer on
  127.0.0.1, one small stdlib HTTP server in a thread that lives only while the demo
  seeds. The workspace allows 127.0.0.1 and sends SMS through the gateway meanwhile; both
  settings are taken back afterwards (`dismantle`), so nothing on loopback stays reachable.

What fails is planned in advance from the demo's seed (`plan`): some CRM lookups answer
503 before they succeed (the INTEGRATION step's retries), one never succeeds, some SMS are
refused before they go (delivery retries), and one is refused on every attempt and then
resent by hand (services/resend.py) once the gateway is back.
"""

from __future__ import annotations

import json
import random
import secrets
import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy.orm import Session

from relayflow.services import delivery_ops, signed
from relayflow.services import network as network_service
from relayflow.services import provider as provider_service
from relayflow.services import resend as resend_service
from relayflow.services import secret as secret_service
from relayflow.services import webhook as webhook_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope

SIGNUP = "website-signup"
SECRET_NAME = "SIGNUP_WEBHOOK_SECRET"
PLACEHOLDER = "http://crm.demo.invalid"  # the CRM's origin in the shipped definition
ALWAYS = 1000  # failures before success: never succeeds
OWNERS = ("Mary Jackson", "Dorothy Vaughan", "Annie Easley", "Evelyn Boyd")
PLANS = ("free", "starter", "pro", "pro")
RESEND_REASON = "the SMS gateway was down when it was sent; sent again now that it is back"


@dataclass(frozen=True, slots=True, kw_only=True)
class Signup:
    """One sign-up the website posts, and how the simulated services treat it."""

    day: int  # days before today
    number: int
    first_name: str
    plan: str = "free"  # the CRM account's
    owner: str = ""  # the CRM account's
    crm_failures: int = 0  # 503s before the CRM answers
    sms_failures: int = 0  # 503s before the gateway takes the SMS
    sent_twice: bool = False  # the website sends it again under the same Idempotency-Key

    @property
    def email(self) -> str:
        return f"{self.first_name.lower()}.{self.number}@example.com"

    @property
    def phone(self) -> str:
        return f"+447700900{self.number % 1000:03d}"  # Ofcom's range for drama: no one's

    @property
    def key(self) -> str:
        return f"signup-{self.number}"

    def body(self) -> bytes:
        return json.dumps({"signup_id": self.key, "email": self.email, "phone": self.phone,
                           "first_name": self.first_name, "source": "website"}).encode()


def plan(rng: random.Random, *, days: int, names: Sequence[str],
         sms_attempts: int) -> list[Signup]:
    """About one sign-up every other day, and every case shown whatever the number of days:
    the first sign-up is sent twice; on the second day with sign-ups the CRM has a bad day
    (one lookup retried once, one twice, one that never succeeds: the same day, so the
    pauses between their tries overlap), one SMS is retried once and another is refused on
    all `sms_attempts` attempts (resent by hand later)."""
    first: list[list[dict[str, Any]]] = [
        [{"sent_twice": True}],
        [{"crm_failures": 1, "sms_failures": 1}, {"crm_failures": ALWAYS},
         {"crm_failures": 2, "sms_failures": sms_attempts}]]
    signups: list[Signup] = []
    for day in range(days, -1, -1):
        if first:
            cases = first.pop(0)
        elif rng.random() < 0.5:
            cases = [{"sms_failures": int(rng.random() < 0.15),
                      "sent_twice": rng.random() < 0.2}]
        else:
            continue
        for case in cases:
            signups.append(Signup(day=day, number=600 + len(signups),
                                  first_name=rng.choice(names), plan=rng.choice(PLANS),
                                  owner=rng.choice(OWNERS), **case))
    return signups


# --- the simulated CRM and SMS gateway --------------------------------------------------


@dataclass(slots=True)
class _State:
    accounts: dict[str, dict[str, str]] = field(default_factory=dict)  # by email
    crm_failures: dict[str, int] = field(default_factory=dict)  # by email
    sms_failures: dict[str, int] = field(default_factory=dict)  # by phone
    tries: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _answer(self, status: int, payload: dict[str, Any], **headers: str) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            email = parse_qs(url.query).get("email", [""])[0]
            if url.path != "/crm/accounts":
                return self._answer(404, {"error": "not found"})
            # A step's tries share its Idempotency-Key: count them per key.
            key = f"crm:{self.headers.get('Idempotency-Key', '')}"
            with state.lock:
                state.tries[key] += 1
                tries = state.tries[key]
                account = state.accounts.get(email)
            if tries <= state.crm_failures.get(email, 0):
                return self._answer(503, {"error": "CRM temporarily unavailable"})
            if account is None:
                return self._answer(404, {"error": f"no account for {email}"})
            self._answer(200, {"account": account},
                         X_Request_Id=f"req-{account['id']}-{tries}")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            message = json.loads(self.rfile.read(length) or b"{}")
            if self.path != "/sms/messages":
                return self._answer(404, {"error": "not found"})
            to = str(message.get("to", ""))
            with state.lock:  # each attempt is a new Idempotency-Key: count per number
                state.tries[f"sms:{to}"] += 1
                tries = state.tries[f"sms:{to}"]
            if tries <= state.sms_failures.get(to, 0):
                return self._answer(503, {"error": "gateway overloaded, try again later"})
            self._answer(201, {"id": f"sms-{to[-3:]}-{tries}", "status": "queued"})

    return Handler


@dataclass(slots=True)
class Simulation:
    url: str
    state: _State


@contextmanager
def started(signups: Sequence[Signup]) -> Iterator[Simulation]:
    """The CRM and the SMS gateway on 127.0.0.1 (a free port) until the block ends."""
    state = _State()
    for signup in signups:
        state.accounts[signup.email] = {"id": f"acct-{signup.number}", "plan": signup.plan,
                                        "owner": signup.owner}
        state.crm_failures[signup.email] = signup.crm_failures
        state.sms_failures[signup.phone] = signup.sms_failures
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    # A short poll: shutdown() waits for the loop to notice.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="demo-simulation", daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield Simulation(f"http://{host!s}:{port}", state)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --- the demo workspace's side ----------------------------------------------------------


def definition(data: dict[str, Any], simulation: Simulation) -> dict[str, Any]:
    """The sign-up workflow as saved: its CRM lookup aimed at the simulated CRM."""
    request = data["nodes"]["crm_lookup"]["request"]
    request["url"] = str(request["url"]).replace(PLACEHOLDER, simulation.url)
    return data


def configure(session: Session, runtime: Runtime, *, workspace_id: uuid.UUID,
              simulation: Simulation, now: datetime) -> str:
    """The signing secret (returned: only the website knows it), 127.0.0.1 allowed for this
    workspace, and SMS through the simulated gateway."""
    value = secrets.token_urlsafe(24)
    secret_service.put(session, workspace_id=workspace_id, name=SECRET_NAME, value=value,
                       cipher=runtime.cipher, now=now, actor="demo")
    network_service.put(session, workspace_id=workspace_id, allow=["127.0.0.1"], now=now,
                        actor="demo")
    provider_service.put(session, workspace_id=workspace_id, channel="sms", now=now,
                         actor="demo", network_allow=runtime.network_allow, data={
                             "type": "http", "url": f"{simulation.url}/sms/messages",
                             "message_id_path": "body.id"})
    return value


def post(runtime: Runtime, *, token: str, secret: str, signups: Sequence[Signup]) -> None:
    """The website posts these sign-ups now (by the runtime's clock), each signed."""
    if not signups:
        return
    stamp = int(runtime.clock().timestamp())
    requests = [webhook_service.Inbound(
        token=token, body=signup.body(), idempotency_key=signup.key,
        signature=signed.signature_header(secret, signup.body(), timestamp=stamp))
        for signup in signups]
    for answer in webhook_service.receive_many(runtime.sessions, requests,
                                               cipher=runtime.cipher, clock=runtime.clock,
                                               per_minute=0):
        if isinstance(answer, Exception):
            raise answer


def resend_refused_sms(runtime: Runtime, *, workspace_id: uuid.UUID,
                       signups: Sequence[Signup], attempts: int) -> int:
    """What an operator does once the gateway is back: resend by hand the SMS it refused
    on every attempt. Returns how many were resent."""
    phones = {s.phone for s in signups if s.sms_failures >= attempts}
    now = runtime.clock()
    with session_scope(runtime.sessions) as session:
        page = delivery_ops.search(session, workspace_id=workspace_id, limit=50, now=now,
                                   query=delivery_ops.DeliveryQuery(status="FAILED",
                                                                    channel="sms"))
        failed = {row.attempt.recipient: row.attempt for row in reversed(page.rows)
                  if row.attempt.recipient in phones}  # the newest attempt of each
        for attempt in failed.values():
            resend_service.resend(session, workspace_id=workspace_id,
                                  attempt_id=str(attempt.id), reason=RESEND_REASON,
                                  override=False, actor="demo@example.com", now=now)
    if failed:
        resend_service.send_queued(runtime)
    return len(failed)


def dismantle(session: Session, runtime: Runtime, *, workspace_id: uuid.UUID) -> None:
    """The simulated services are going: SMS back to the outbox, loopback refused again."""
    now = runtime.clock()
    provider_service.delete(session, workspace_id=workspace_id, channel="sms", now=now,
                            actor="demo")
    network_service.put(session, workspace_id=workspace_id, allow=[], now=now, actor="demo")
