"""Frequency caps under concurrency: 20 runs race to message ONE contact, and exactly the
cap's worth of messages leaves per channel.

Each run sends one email (to an SMTP sink) and one SMS (to an HTTP provider); the workspace
caps email at 3 and SMS at 2 per contact per UTC day. Real worker processes, or threads each
with its own claim, take the runs at the same time, so the last slots are raced for: the
slot is a conditional upsert (SQLite serialises writers with BEGIN IMMEDIATE, PostgreSQL
re-checks the condition under the row lock), and every message over the cap is SUPPRESSED
with the cap named while its run goes on.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import select

from relayflow.services import contact as contact_service
from relayflow.services import frequency as frequency_service
from relayflow.services import run as run_service
from relayflow.services import walk
from relayflow.services import workflow as workflow_service
from relayflow.storage.db import session_scope
from relayflow.storage.models import DeliveryAttempt, Job
from tests.support import smtpserver
from tests.support.flows import install, set_provider, statuses
from tests.support.processes import start_worker, stop, wait_until

pytestmark = pytest.mark.slow
RUNS = 20
CAPS = {"email": 3, "sms": 2}
WORKERS = 4
FLOW = {"key": "both", "trigger": {"type": "manual"}, "start": "mail", "nodes": {
    "mail": {"type": "SEND_MESSAGE", "channel": "email", "subject": "News",
             "body": "Hello from run {{ run.id }}", "next": "text"},
    "text": {"type": "SEND_MESSAGE", "channel": "sms", "to": "+14155550123",
             "body": "Hello from run {{ run.id }}", "next": "done"},
    "done": {"type": "END"}}}


@pytest.fixture
def sink():
    server = smtpserver.start()
    yield server
    server.close()


@pytest.fixture
def capped(runtime, workspace, sink, http_server):
    """Both channels on real providers, the caps set, and 20 runs for one contact."""
    set_provider(runtime, workspace.id, "email", {
        "type": "smtp", "host": "127.0.0.1", "port": sink.port, "tls": "none",
        "from": "ops@relay.test", "timeout": 10})
    set_provider(runtime, workspace.id, "sms", {
        "type": "http", "url": f"{http_server.url}/messages",
        "body": {"to": "{{ to }}", "text": "{{ body }}"}, "message_id_path": "body.id"})
    install(runtime, workspace.id, FLOW)
    with session_scope(runtime.sessions) as session:
        frequency_service.put(session, workspace_id=workspace.id, caps=CAPS,
                              now=runtime.clock())


def _enroll_all(runtime, workspace) -> None:
    """All 20 runs in one commit, so they become due together."""
    with session_scope(runtime.sessions) as session:
        workflow = workflow_service.get(session, workspace_id=workspace.id, key="both")
        contact = contact_service.resolve(session, workspace_id=workspace.id,
                                          spec={"email": "ada@example.com"},
                                          now=runtime.clock())
        for _ in range(RUNS):
            run_service.enroll(session, workflow=workflow, contact=contact,
                               trigger_type="manual", event={}, now=runtime.clock())


def _check_the_caps_held(runtime, workspace, sink, http_server, how: str) -> None:
    with session_scope(runtime.sessions) as session:
        attempts = list(session.scalars(select(DeliveryAttempt)))
        contact_ids = {a.contact_id for a in attempts}
        [contact_id] = contact_ids
        counted = {channel: frequency_service.counted(
            session, workspace_id=workspace.id, contact_id=contact_id, channel=channel,
            now=runtime.clock()) for channel in CAPS}
    by_channel = {channel: Counter(a.status for a in attempts if a.channel == channel)
                  for channel in CAPS}
    received = {"email": len(sink.messages), "sms": len(http_server.delivered)}
    for channel, cap in CAPS.items():
        counts = by_channel[channel]
        print(f"frequency caps ({how}): {RUNS} runs to one contact, "  # noqa: T201
              f"{channel} cap {cap}: {counts['SENT']} sent, {received[channel]} received, "
              f"{counts['SUPPRESSED']} suppressed")
    assert statuses(runtime) == {"COMPLETED": RUNS}
    for channel, cap in CAPS.items():
        assert by_channel[channel] == {"SENT": cap, "SUPPRESSED": RUNS - cap}
        assert received[channel] == cap
        assert counted[channel] == cap
    expected = {f"not sent: frequency cap, {cap} {channel} messages per day to this contact "
                "reached" for channel, cap in CAPS.items()}
    suppressed = [a for a in attempts if a.status == "SUPPRESSED"]
    assert {a.error for a in suppressed} == expected
    assert {a.suppressed_by for a in suppressed} == {"frequency_cap"}


def _owners(runtime) -> set[str]:
    with session_scope(runtime.sessions) as session:
        return {o for o in session.scalars(select(Job.lease_owner)) if o}


def test_worker_processes_send_no_more_than_the_cap(settings, runtime, workspace, capped,
                                                    sink, http_server):
    workers = [start_worker(settings, lease_seconds=10) for _ in range(WORKERS)]
    owners: set[str] = set()

    def done() -> bool:
        owners.update(_owners(runtime))
        return statuses(runtime) == {"COMPLETED": RUNS}

    try:
        _enroll_all(runtime, workspace)
        wait_until(done, timeout=60, what=f"{RUNS} runs to complete")
        assert all(w.poll() is None for w in workers), "a worker died"
    finally:
        for worker in workers:
            stop(worker)
    print(f"frequency caps: {len(owners)} worker processes held the {RUNS} runs")  # noqa: T201
    assert len(owners) >= 2  # the sends really raced across processes
    _check_the_caps_held(runtime, workspace, sink, http_server, f"{WORKERS} worker processes")


def test_twenty_concurrent_claims_send_no_more_than_the_cap(runtime, workspace, capped, sink,
                                                            http_server):
    _enroll_all(runtime, workspace)
    start_together = threading.Barrier(RUNS)
    claimed: list[int] = []

    def one_claim(n: int) -> None:
        start_together.wait()
        claimed.append(walk.advance(runtime, worker=f"thread-{n}", limit=1, lease_seconds=60))

    threads = [threading.Thread(target=one_claim, args=(n,)) for n in range(RUNS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads)
    assert claimed == [1] * RUNS  # each thread walked its own run, all at once
    _check_the_caps_held(runtime, workspace, sink, http_server, f"{RUNS} threads")
