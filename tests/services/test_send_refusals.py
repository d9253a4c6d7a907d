"""A message that cannot be sent as rendered fails its own step, cleanly and for good.

Webhook data is enough to put a CR LF in a subject or a list in `to`. One such run in a
claimed batch must not fail the worker iteration, hold the other runs of the batch, be
marked "outcome unknown" (nothing reached the server) or leave a resend QUEUED forever."""

from __future__ import annotations

import uuid

import pytest

from relayflow.services import resend as resend_service
from relayflow.services import walk
from relayflow.storage.db import session_scope
from relayflow.storage.ids import new_id
from relayflow.storage.models import DeliveryAttempt
from tests.support.flows import attempts_of, install, run_of, set_provider, start, steps_of

GOOD = 6
BAD_PAYLOADS = [
    ({"to": "ann@example.com", "s": "Hi\r\nBcc: eve@evil.test"}, "Subject header"),
    ({"to": "ann@example.com, eve@evil.test", "s": "Hi"}, "to must be exactly one"),
    ({"to": "ann@example.com\nBcc: eve@evil.test", "s": "Hi"}, "to header"),
    ({"to": "not an address", "s": "Hi"}, "is not an email address"),
]


def _flow(**send: object) -> dict:
    node = {"type": "SEND_MESSAGE", "channel": "email", "to": "{{ event.to }}",
            "subject": "{{ event.s }}", "body": "Hello", "next": "done", **send}
    return {"key": "mail", "trigger": {"type": "manual"}, "start": "send",
            "nodes": {"send": node, "done": {"type": "END"}}}


def _batch(runtime, workspace, bad: dict) -> tuple[list[uuid.UUID], uuid.UUID]:
    good = []
    for n in range(GOOD):
        [run_id] = start(runtime, workspace.id, "mail",
                         event={"to": f"c{n}@example.com", "s": f"Hello {n}"})
        good.append(run_id)
        if n == 1:  # early in the batch: before the fix, the runs after it were held
            [bad_id] = start(runtime, workspace.id, "mail", event=bad)
    return good, bad_id


class TestOneBadRunInABatch:
    @pytest.mark.parametrize(("bad", "named"), BAD_PAYLOADS)
    def test_fails_its_own_step_and_the_rest_complete(self, runtime, workspace, smtp_sink, bad,
                                                      named):
        install(runtime, workspace.id, _flow())
        good, bad_id = _batch(runtime, workspace, bad)
        claimed = walk.advance(runtime, worker="w", limit=64, lease_seconds=30)
        assert claimed == GOOD + 1  # one iteration, nothing raised
        assert [run_of(runtime, r).status for r in good] == ["COMPLETED"] * GOOD
        assert sorted(rcpt for _, rcpts in smtp_sink.envelopes for rcpt in rcpts) == sorted(
            f"c{n}@example.com" for n in range(GOOD))
        assert all(len(rcpts) == 1 for _, rcpts in smtp_sink.envelopes)
        [attempt] = attempts_of(runtime, bad_id)
        assert attempt.status == "FAILED"
        assert named in (attempt.error or "")
        assert "outcome unknown" not in (attempt.error or "")
        assert attempt.send_started_at is None  # never marked "sending now"
        step = steps_of(runtime, bad_id)[1]
        assert (step.status, step.output["status"]) == ("COMPLETED", "FAILED")
        assert run_of(runtime, bad_id).status == "COMPLETED"  # on_failure: continue
        assert walk.advance(runtime, worker="w", limit=64, lease_seconds=30) == 0

    def test_on_failure_fail_stops_the_run_with_the_reason(self, runtime, workspace, smtp_sink):
        install(runtime, workspace.id, _flow(on_failure="fail"))
        good, bad_id = _batch(runtime, workspace, BAD_PAYLOADS[0][0])
        walk.advance(runtime, worker="w", limit=64, lease_seconds=30)
        assert [run_of(runtime, r).status for r in good] == ["COMPLETED"] * GOOD
        run = run_of(runtime, bad_id)
        assert run.status == "FAILED"
        assert "Subject header contains the control character" in (run.error or "")
        assert len(smtp_sink.raw) == GOOD


class TestSmsAndHttp:
    def test_a_list_of_numbers_never_reaches_the_gateway(self, runtime, workspace,
                                                          http_server):
        set_provider(runtime, workspace.id, "sms", {
            "type": "http", "url": f"{http_server.url}/messages",
            "body": {"to": "{{ to }}", "text": "{{ body }}"}})
        install(runtime, workspace.id, {
            "key": "sms", "trigger": {"type": "manual"}, "start": "send", "nodes": {
                "send": {"type": "SEND_MESSAGE", "channel": "sms", "to": "{{ event.to }}",
                         "body": "Hi", "next": "done"},
                "done": {"type": "END"}}})
        [bad] = start(runtime, workspace.id, "sms", event={"to": "+14155550123,+14155550124"})
        [good] = start(runtime, workspace.id, "sms", event={"to": "+1 (415) 555-0125"})
        walk.advance(runtime, worker="w", limit=64, lease_seconds=30)
        [attempt] = attempts_of(runtime, bad)
        assert attempt.status == "FAILED"
        assert "one phone number" in (attempt.error or "")
        assert attempts_of(runtime, good)[0].status == "SENT"
        assert [r.body for r in http_server.requests] == [
            '{"to":"+1 (415) 555-0125","text":"Hi"}']


def _failed_attempt(runtime, workspace_id: uuid.UUID, **over: object) -> uuid.UUID:
    """An attempt as a run leaves it after a failed send (the row a resend copies)."""
    values = {"id": new_id(), "workspace_id": workspace_id, "channel": "email",
              "provider": "smtp", "recipient": "ann@example.com", "subject": "Hi",
              "body": "Hello", "status": "FAILED", "created_at": runtime.clock(), **over}
    with session_scope(runtime.sessions) as session:
        session.add(DeliveryAttempt(**values))
    return values["id"]  # type: ignore[return-value]


def _get(runtime, attempt_id: uuid.UUID) -> DeliveryAttempt:
    with session_scope(runtime.sessions) as session:
        row = session.get(DeliveryAttempt, attempt_id)
        assert row is not None
        return row


class TestResendOfABadMessage:
    @pytest.mark.parametrize(("over", "named"), [
        ({"subject": "Hi\r\nBcc: eve@evil.test"}, "Subject header"),
        ({"recipient": "ann@example.com, eve@evil.test"}, "to must be exactly one"),
    ])
    def test_fails_at_once_and_never_stays_queued(self, runtime, workspace, smtp_sink, over,
                                                  named):
        original = _failed_attempt(runtime, workspace.id, **over)
        with session_scope(runtime.sessions) as session:
            copy_id = resend_service.resend(
                session, workspace_id=workspace.id, attempt_id=str(original),
                reason="customer asked", override=False, actor="test",
                now=runtime.clock()).id
        assert resend_service.send_queued(runtime) == 1
        copy = _get(runtime, copy_id)
        assert copy.status == "FAILED"
        assert named in (copy.error or "")
        assert smtp_sink.raw == []
        assert resend_service.send_queued(runtime) == 0
