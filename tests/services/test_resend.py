"""Manual resend: a run-less attempt, same content, actor and reason, sent by a worker."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from relayflow.errors import Conflict, NotFound
from relayflow.services import resend as resend_service
from relayflow.storage.db import session_scope
from relayflow.storage.models import AuditEvent, DeliveryAttempt
from tests.services.test_delivery import _email_flow
from tests.support import smtpserver
from tests.support.flows import attempts_of, install, set_provider, start, suppress
from tests.support.worker import drain


@pytest.fixture
def sent(runtime, workspace):
    server = smtpserver.start()
    set_provider(runtime, workspace.id, "email", {
        "type": "smtp", "host": "127.0.0.1", "port": server.port, "tls": "none",
        "from": "ops@relay.test"})
    install(runtime, workspace.id, _email_flow())
    [run_id] = start(runtime, workspace.id, "mail", email="ann@example.com",
                     attributes={"first_name": "Ann", "plan": "pro"})
    drain(runtime)
    [attempt] = attempts_of(runtime, run_id)
    yield attempt, server
    server.close()


def _resend(runtime, workspace, attempt_id, **over):
    args = {"reason": "customer asked", "override": False, "actor": "key:rf_test"}
    args.update(over)
    with session_scope(runtime.sessions) as session:
        copy = resend_service.resend(session, workspace_id=workspace.id,
                                     attempt_id=str(attempt_id), now=runtime.clock(), **args)
        return copy.id


def _get(runtime, attempt_id) -> DeliveryAttempt:
    with session_scope(runtime.sessions) as session:
        row = session.get(DeliveryAttempt, attempt_id)
        assert row is not None
        return row


class TestResend:
    def test_makes_a_run_less_attempt_with_the_same_content(self, runtime, workspace, sent):
        original, server = sent
        copy_id = _resend(runtime, workspace, original.id)
        assert resend_service.send_queued(runtime) == 1
        copy = _get(runtime, copy_id)
        assert (copy.run_id, copy.resend_of, copy.status) == (None, original.id, "SENT")
        assert (copy.actor, copy.reason) == ("key:rf_test", "customer asked")
        assert (copy.subject, copy.body, copy.html) == (original.subject, original.body,
                                                        original.html)
        assert len(server.messages) == 2
        assert server.messages[1]["Message-ID"] == copy.provider_message_id
        with session_scope(runtime.sessions) as session:
            actions = session.scalars(select(AuditEvent.action)).all()
        assert "delivery.resend" in actions
        assert resend_service.send_queued(runtime) == 0  # sent once, never again

    def test_a_suppressed_contact_needs_override_which_is_recorded(self, runtime, workspace,
                                                                   sent):
        original, server = sent
        suppress(runtime, "ann@example.com", "email", "unsubscribed")
        with pytest.raises(Conflict, match="override"):
            _resend(runtime, workspace, original.id)
        copy_id = _resend(runtime, workspace, original.id, override=True)
        resend_service.send_queued(runtime)
        copy = _get(runtime, copy_id)
        assert copy.suppression_override is True
        assert copy.status == "SENT"
        assert len(server.messages) == 2

    def test_another_workspace_cannot_resend(self, runtime, workspace, other_workspace, sent):
        original, _ = sent
        with pytest.raises(NotFound):
            _resend(runtime, other_workspace, original.id)


def _raw_header(raw: bytes, name: bytes) -> bytes:
    """The header's bytes as they went over the wire, folded lines included."""
    head = raw.split(b"\r\n\r\n", 1)[0].replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    found, keep = [], False
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if keep:
                found.append(line)
            continue
        keep = line.lower().startswith(name.lower() + b":")
        if keep:
            found.append(line)
    return b"\n".join(found)


@pytest.fixture
def long_base_url(runtime):
    """A long public base URL; asked for before `sent`, so its message carries it."""
    runtime.base_url = "https://mail.relay.example.com/" + "tenants/acme-industries/" * 3


class TestResendHeaders:
    def test_a_resend_carries_the_one_click_unsubscribe_headers_of_the_original(
            self, runtime, workspace, sent):
        original, server = sent
        _resend(runtime, workspace, original.id)
        assert resend_service.send_queued(runtime) == 1
        first, again = server.raw
        for name in (b"List-Unsubscribe", b"List-Unsubscribe-Post"):
            assert _raw_header(first, name)
            assert _raw_header(again, name) == _raw_header(first, name)
        assert server.messages[1]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    def test_a_long_unsubscribe_url_goes_out_whole_on_the_send_and_the_resend(
            self, runtime, workspace, long_base_url, sent):
        """A URL of over 200 characters (a long public base URL) is written as it is, on
        one line, never RFC 2047-encoded or folded: mail clients read it from the bytes."""
        original, server = sent
        _resend(runtime, workspace, original.id)
        assert resend_service.send_queued(runtime) == 1
        raw = server.raw
        assert len(raw) == 2
        [link] = {m["List-Unsubscribe"] for m in server.messages}
        assert len(link) > 200
        assert link.startswith(f"<{runtime.base_url}/u/")
        assert link.endswith(">")
        for message in raw:
            assert f"\r\nList-Unsubscribe: {link}\r\n".encode() in message
            assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in message
            assert b"=?" not in _raw_header(message, b"List-Unsubscribe")
