"""Provider status callbacks flip attempts to DELIVERED / BOUNCED and suppress contacts."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from relayflow.services.signed import signature_header
from relayflow.storage.db import session_scope
from relayflow.storage.models import FailureGroup
from tests.services.test_delivery import _email_flow
from tests.support import smtpserver
from tests.support.flows import attempts_of, install, set_provider, set_secret, start
from tests.support.worker import drain

EVENTS_SECRET = "evsec-31f0-canary"


@pytest.fixture
def sent(runtime, workspace):
    """One SENT email attempt through a real SMTP server, with signed callbacks enabled."""
    server = smtpserver.start()
    set_secret(runtime, workspace.id, "EVENTS", EVENTS_SECRET)
    set_provider(runtime, workspace.id, "email", {
        "type": "smtp", "host": "127.0.0.1", "port": server.port, "tls": "none",
        "from": "ops@relay.test", "events_secret": "EVENTS"})
    install(runtime, workspace.id, _email_flow())
    [run_id] = start(runtime, workspace.id, "mail", email="ann@example.com",
                     attributes={"first_name": "Ann", "plan": "pro"})
    drain(runtime)
    [attempt] = attempts_of(runtime, run_id)
    assert attempt.status == "SENT"
    yield attempt, server
    server.close()


def _post(client, workspace, event: dict, *, secret: str = EVENTS_SECRET,
          t: int | None = None, slug: str | None = None):
    body = json.dumps(event).encode()
    header = signature_header(secret, body, timestamp=t if t is not None else int(time.time()))
    return client.post(f"/providers/{slug or workspace.slug}/email/events", content=body,
                       headers={"Relayflow-Signature": header,
                                "Content-Type": "application/json"})


def _status(runtime, attempt) -> str:
    return attempts_of(runtime, attempt.run_id)[0].status


class TestCallbacks:
    def test_delivered(self, runtime, workspace, sent, anonymous_client):
        attempt, _ = sent
        response = _post(anonymous_client, workspace, {
            "type": "delivered", "message_id": attempt.provider_message_id})
        assert response.status_code == 200, response.text
        assert _status(runtime, attempt) == "DELIVERED"

    def test_hard_bounce_suppresses_the_next_send(self, runtime, workspace, sent,
                                                  anonymous_client):
        attempt, server = sent
        response = _post(anonymous_client, workspace, {"type": "bounced",
                                                       "attempt_id": str(attempt.id)})
        assert response.json()["applied"][0] == {"attempt_id": str(attempt.id),
                                                 "status": "BOUNCED", "suppressed": "bounced"}
        assert _status(runtime, attempt) == "BOUNCED"
        [next_run] = start(runtime, workspace.id, "mail", email="ann@example.com")
        drain(runtime)
        [again] = attempts_of(runtime, next_run)
        assert (again.status, again.suppressed_by) == ("SUPPRESSED", "bounced")
        assert len(server.messages) == 1

    def test_soft_bounce_does_not_suppress(self, runtime, workspace, sent, anonymous_client):
        attempt, _ = sent
        response = _post(anonymous_client, workspace, {
            "type": "bounced", "bounce": "soft", "message_id": attempt.provider_message_id})
        assert response.json()["applied"][0]["suppressed"] is None

    def test_a_bounce_is_named_by_its_kind(self, runtime, workspace, sent, anonymous_client):
        attempt, _ = sent
        assert attempts_of(runtime, attempt.run_id)[0].fingerprint is None  # SENT
        _post(anonymous_client, workspace, {
            "type": "bounced", "bounce": "soft", "message_id": attempt.provider_message_id,
            "reason": "mailbox full for ann@example.com"})
        [bounced] = attempts_of(runtime, attempt.run_id)
        assert bounced.status == "BOUNCED"
        with session_scope(runtime.sessions) as session:
            group = session.get(FailureGroup, (workspace.id, bounced.fingerprint))
            assert group is not None
            assert (group.kind, group.node_id, group.error_class, group.pattern) == (
                "delivery", "send", "bounce soft", "mailbox full for <email>")

    def test_complaint_suppresses(self, runtime, workspace, sent, anonymous_client):
        attempt, _ = sent
        response = _post(anonymous_client, workspace, {
            "events": [{"type": "delivered", "message_id": attempt.provider_message_id},
                       {"type": "complained", "message_id": attempt.provider_message_id}]})
        assert [a["status"] for a in response.json()["applied"]] == ["DELIVERED", "DELIVERED"]
        assert response.json()["applied"][1]["suppressed"] == "complained"

    @pytest.mark.parametrize(("secret", "skew"), [
        ("wrong-secret", 0), (EVENTS_SECRET, 301), (EVENTS_SECRET, -301)])
    def test_bad_or_stale_signatures_change_nothing(self, runtime, workspace, sent,
                                                    anonymous_client, secret, skew):
        attempt, _ = sent
        fixed = runtime.clock().replace(microsecond=0)  # whole seconds: an exact window test
        runtime.clock = lambda: fixed
        response = _post(anonymous_client, workspace, {
            "type": "bounced", "message_id": attempt.provider_message_id},
            secret=secret, t=int(fixed.timestamp()) - skew)
        assert response.status_code == 401
        assert _status(runtime, attempt) == "SENT"
        assert EVENTS_SECRET not in response.text

    def test_unsigned_is_refused(self, runtime, workspace, sent, anonymous_client):
        attempt, _ = sent
        response = anonymous_client.post(f"/providers/{workspace.slug}/email/events",
                                         json={"type": "delivered",
                                               "message_id": attempt.provider_message_id})
        assert response.status_code == 401

    def test_unknown_message_and_other_workspaces(self, runtime, workspace, other_workspace,
                                                  sent, anonymous_client):
        attempt, _ = sent
        missing = _post(anonymous_client, workspace, {"type": "delivered",
                                                      "attempt_id": str(uuid.uuid4())})
        assert missing.status_code == 404
        theirs = _post(anonymous_client, workspace, {"type": "delivered",
                                                     "message_id": attempt.provider_message_id},
                       slug=other_workspace.slug)
        assert theirs.status_code == 404
        assert _status(runtime, attempt) == "SENT"

    def test_bad_event_is_422(self, workspace, sent, anonymous_client):
        response = _post(anonymous_client, workspace, {"type": "opened", "message_id": "x"})
        assert response.status_code == 422
