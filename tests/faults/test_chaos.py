"""200 runs, two worker slots, 50 SIGKILLs at random moments plus every named crash point.

Each run calls an HTTP integration, updates its contact, emails through a real SMTP
server and texts through an HTTP provider that de-duplicates on the Idempotency-Key it
is sent. First a worker is started at each named crash point (RELAYFLOW_FAULT) and
dies there; then a killer thread SIGKILLs a random worker every few hundred milliseconds
and starts a replacement. Afterwards: no run lost or left unowned, every step recorded
once, and neither the SMTP server nor the provider delivered any message twice.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from relayflow.faults import POINTS
from relayflow.services import contact as contact_service
from relayflow.services import run as run_service
from relayflow.services import workflow as workflow_service
from relayflow.storage.db import session_scope
from relayflow.storage.models import DeliveryAttempt, Job, RunStep, WorkflowRun
from tests.support import smtpserver
from tests.support.flows import install, set_provider, statuses
from tests.support.processes import start_worker, stop, wait_until

pytestmark = pytest.mark.slow
RUNS = int(os.environ.get("RELAYFLOW_CHAOS_RUNS", "200"))
KILLS = int(os.environ.get("RELAYFLOW_CHAOS_KILLS", "50"))
NODES = ["trigger", "lookup", "tag", "email", "text", "done"]


def _flow(url: str) -> dict:
    return {"key": "chaos", "trigger": {"type": "manual"}, "start": "lookup", "nodes": {
        "lookup": {"type": "INTEGRATION", "request": {"method": "POST", "url": url},
                   "next": "tag"},
        "tag": {"type": "UPDATE_CONTACT", "set": {"seen": "yes"}, "next": "email"},
        "email": {"type": "SEND_MESSAGE", "channel": "email", "subject": "Hello",
                  "body": "Once only", "next": "text"},
        "text": {"type": "SEND_MESSAGE", "channel": "sms", "body": "Once only",
                 "next": "done"},
        "done": {"type": "END"}}}


class Chaos:
    """Two worker slots; `kill()` SIGKILLs one at random and starts a replacement."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.rng = random.Random(5)
        self.slots = [self._spawn(), self._spawn()]
        self.killed = 0
        self.self_killed: Counter[str] = Counter()

    def _spawn(self, fault: str | None = None) -> subprocess.Popen[bytes]:
        return start_worker(self.settings, fault=fault, lease_seconds=1.0)

    def crash_at(self, point: str) -> None:
        """Run a worker that kills itself at `point` the first time it gets there."""
        doomed = self._spawn(point)
        self.slots[1], old = doomed, self.slots[1]
        stop(old)
        code = doomed.wait(60)
        assert code == -signal.SIGKILL, f"the worker with {point} exited with {code}"
        self.self_killed[point] += 1
        self.slots[1] = self._spawn()

    def kill(self) -> None:
        index = self.rng.randrange(len(self.slots))
        process = self.slots[index]
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            self.killed += 1
        self.slots[index] = self._spawn()

    def stop(self) -> None:
        for process in self.slots:
            stop(process)


def test_chaos(settings, runtime, workspace, http_server):
    sink = smtpserver.start()
    try:
        set_provider(runtime, workspace.id, "email", {
            "type": "smtp", "host": "127.0.0.1", "port": sink.port, "tls": "none",
            "from": "ops@relay.test"})
        set_provider(runtime, workspace.id, "sms", {
            "type": "http", "url": f"{http_server.url}/messages",
            "body": {"to": "{{ to }}", "text": "{{ body }}"}})
        install(runtime, workspace.id, _flow(f"{http_server.url}/slow/0.05"))
        with session_scope(runtime.sessions) as session:
            workflow = workflow_service.get(session, workspace_id=workspace.id, key="chaos")
            for n in range(RUNS):
                contact = contact_service.resolve(session, workspace_id=workspace.id, spec={
                    "email": f"c{n}@example.com", "phone": f"+1415555{n:04d}"},
                    now=runtime.clock())
                run_service.enroll(session, workflow=workflow, contact=contact,
                                   trigger_type="manual", event={}, now=runtime.clock())
        chaos = Chaos(settings)
        for point in POINTS:  # each named crash point once, while most runs are pending
            chaos.crash_at(point)
        stop_killing = threading.Event()

        def killer() -> None:
            while chaos.killed < KILLS and not stop_killing.is_set():
                time.sleep(chaos.rng.uniform(0.1, 0.4))
                chaos.kill()

        thread = threading.Thread(target=killer)
        thread.start()
        try:
            thread.join(300)
            assert chaos.killed == KILLS
            seen: dict[str, int] = {}

            def finished() -> bool:
                seen.clear()
                seen.update(statuses(runtime))
                return seen == {"COMPLETED": RUNS}

            try:
                wait_until(finished, timeout=240, what=f"{RUNS} runs to complete")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; run statuses: {seen}") from None
        finally:
            stop_killing.set()
            thread.join(30)
            chaos.stop()
        with session_scope(runtime.sessions) as session:
            steps = session.execute(select(RunStep.run_id, RunStep.seq, RunStep.node_id)).all()
            jobs = session.scalar(select(func.count()).select_from(Job))
            runs = session.scalar(select(func.count()).select_from(WorkflowRun))
            attempts = session.execute(
                select(DeliveryAttempt.run_id, DeliveryAttempt.channel,
                       DeliveryAttempt.status)).all()
        assert runs == RUNS
        assert jobs == 0  # nothing left claimed, parked or unowned
        assert len({(s.run_id, s.seq) for s in steps}) == len(steps)
        per_run: dict = {}
        for run_id, seq, node in steps:
            per_run.setdefault(run_id, []).append((seq, node))
        assert Counter(tuple(n for _, n in sorted(v)) for v in per_run.values()) == {
            tuple(NODES): RUNS}
        # One attempt per channel per run (no retry is queued for an interrupted send).
        assert Counter((a.run_id, a.channel) for a in attempts).most_common(1)[0][1] == 1
        received = Counter(sink.message_ids())
        assert received
        assert max(received.values()) == 1  # SMTP: never twice
        assert len(http_server.delivered) == RUNS  # provider: each text delivered once
        sent_sms = [a for a in attempts if a.channel == "sms" and a.status == "SENT"]
        assert len(sent_sms) == RUNS
        assert chaos.self_killed == dict.fromkeys(POINTS, 1)
        print(f"chaos: {chaos.killed} SIGKILLs, crash points hit {dict(chaos.self_killed)}, "  # noqa: T201
              f"{len(received)} emails received once each, "
              f"{len(http_server.requests)} provider and integration requests, "
              f"{len(http_server.delivered)} texts delivered")
    finally:
        sink.close()
