"""A manual resend whose worker is SIGKILLed between handing it to the provider and
recording the answer is recovered like a run's send: never left QUEUED.

SMTP cannot be asked whether the message arrived, so it ends FAILED "outcome unknown"
(never sent twice); an HTTP provider gets it again with the same Idempotency-Key and drops
the repeat. The recovering worker takes it over once the claim is older than the provider
deadline plus a lease (here 1 s + 0.5 s)."""

from __future__ import annotations

import signal
import uuid
from datetime import timedelta

import pytest

from relayflow.services import resend as resend_service
from relayflow.storage.db import session_scope
from relayflow.storage.models import DeliveryAttempt
from relayflow.storage.repositories import provider_config as provider_repo
from tests.support.flows import attempts_of, install, set_provider, start
from tests.support.processes import start_worker, stop, wait_until
from tests.support.worker import drain

pytestmark = pytest.mark.slow
FLOW = {"key": "mail", "trigger": {"type": "manual"}, "start": "send", "nodes": {
    "send": {"type": "SEND_MESSAGE", "channel": "email", "subject": "Hello",
             "body": "Once only", "next": "done"},
    "done": {"type": "END"}}}


@pytest.fixture(autouse=True)
def _short_deadline(monkeypatch):
    # The worker processes read it from the environment (start_worker passes it on).
    monkeypatch.setenv("RELAYFLOW_PROVIDER_TIMEOUT_SECONDS", "1")


def _get(runtime, attempt_id: uuid.UUID) -> DeliveryAttempt:
    with session_scope(runtime.sessions) as session:
        row = session.get(DeliveryAttempt, attempt_id)
        assert row is not None
        return row


def _sent_then_resent(runtime, workspace) -> uuid.UUID:
    install(runtime, workspace.id, FLOW)
    [run_id] = start(runtime, workspace.id, "mail", email="ann@example.com")
    drain(runtime)
    [original] = attempts_of(runtime, run_id)
    assert original.status == "SENT"
    with session_scope(runtime.sessions) as session:
        return resend_service.resend(session, workspace_id=workspace.id,
                                     attempt_id=str(original.id), reason="lost",
                                     override=False, actor="test", now=runtime.clock()).id


def _crash_while_sending(settings, runtime, copy_id: uuid.UUID) -> None:
    doomed = start_worker(settings, fault="after_effect", lease_seconds=0.5)
    code = doomed.wait(60)
    assert code == -signal.SIGKILL, (doomed.stderr.read() if doomed.stderr else b"")[-2000:]
    left = _get(runtime, copy_id)
    assert (left.status, left.send_started_at is not None) == ("QUEUED", True)


def _recover(settings, runtime, copy_id: uuid.UUID) -> DeliveryAttempt:
    rescuer = start_worker(settings, lease_seconds=0.5)
    try:
        wait_until(lambda: _get(runtime, copy_id).status != "QUEUED", timeout=20,
                   what="a worker to recover the interrupted resend")
    finally:
        stop(rescuer)
    return _get(runtime, copy_id)


class TestSmtp:
    def test_killed_after_sending_ends_failed_outcome_unknown(self, settings, runtime,
                                                               workspace, smtp_sink):
        copy_id = _sent_then_resent(runtime, workspace)
        _crash_while_sending(settings, runtime, copy_id)
        assert len(smtp_sink.raw) == 2  # the original, and the resend before the crash
        copy = _recover(settings, runtime, copy_id)
        assert copy.status == "FAILED"
        assert "outcome unknown" in (copy.error or "")
        assert len(smtp_sink.raw) == 2  # never sent twice

    def test_a_resend_left_started_by_a_dead_worker(self, settings, runtime, workspace, smtp_sink):
        # The state a crash leaves, whatever killed the worker: claimed, never recorded.
        copy_id = _sent_then_resent(runtime, workspace)
        with session_scope(runtime.sessions) as session:
            row = session.get(DeliveryAttempt, copy_id)
            assert row is not None
            row.send_started_at = runtime.clock() - timedelta(minutes=5)
        copy = _recover(settings, runtime, copy_id)
        assert copy.status == "FAILED"
        assert "outcome unknown" in (copy.error or "")
        assert len(smtp_sink.raw) == 1  # only the original


class TestHttp:
    def test_the_repeat_carries_the_same_key_and_is_dropped(self, settings, runtime,
                                                             workspace, http_server):
        set_provider(runtime, workspace.id, "email", {
            "type": "http", "url": f"{http_server.url}/messages",
            "body": {"to": "{{ to }}", "text": "{{ body }}"}})
        copy_id = _sent_then_resent(runtime, workspace)
        _crash_while_sending(settings, runtime, copy_id)
        copy = _recover(settings, runtime, copy_id)
        assert copy.status == "SENT"
        key = f"relayflow-attempt-{copy_id}"
        assert http_server.keys().count(key) == 2  # sent, crashed, sent again...
        assert len(http_server.delivered) == 2  # ...and delivered once (plus the original)


class TestClockSkew:
    """Whether a claim is abandoned is judged by the database's clock: a worker whose own
    clock runs minutes ahead must not take over a resend another worker is sending."""

    def test_a_worker_ahead_leaves_a_live_claim_alone(self, runtime, workspace):
        copy_id = _sent_then_resent(runtime, workspace)
        with session_scope(runtime.sessions) as session:
            claimed_at = provider_repo.start_sending(session, copy_id)  # a live worker's claim
        assert claimed_at is not None
        real = runtime.clock
        runtime.clock = lambda: real() + timedelta(minutes=10)
        try:
            resend_service.send_queued(runtime, lease_seconds=0.5)
        finally:
            runtime.clock = real
        copy = _get(runtime, copy_id)
        assert (copy.status, copy.send_started_at) == ("QUEUED", claimed_at)
