"""SmtpEmailProvider against a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import pytest

from relayflow.delivery.base import DeliveryError, OutboundMessage
from relayflow.delivery.config import parse
from relayflow.delivery.smtp import SmtpEmailProvider
from tests.support import smtpserver


def _message(**over: object) -> OutboundMessage:
    values = {"attempt_id": "01a2-attempt", "channel": "email", "to": "ada@example.com",
              "subject": "Welcome, Ada", "body": "Plain text body",
              "idempotency_key": "relayflow-attempt-01a2", "html": "<p>HTML body</p>",
              "headers": {"List-Unsubscribe": "<https://relay.test/u/abc>",
                          "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}}
    values.update(over)
    return OutboundMessage(**values)  # type: ignore[arg-type]


# The test servers listen on loopback, which the egress policy refuses unless allowed.


class TestSend:
    def test_the_received_message_is_the_rendered_one(self, sink):
        result = smtpserver.provider(sink.port).send(_message())
        [received] = sink.messages
        assert received["To"] == "ada@example.com"
        assert received["From"] == "ops@relay.test"
        assert received["Subject"] == "Welcome, Ada"
        assert received["Message-ID"] == "<01a2-attempt@relay.test>"
        assert result.provider_message_id == "<01a2-attempt@relay.test>"
        assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        text = received.get_body(preferencelist=("plain",)).get_content()
        html = received.get_body(preferencelist=("html",)).get_content()
        assert text.strip() == "Plain text body"
        assert html.strip() == "<p>HTML body</p>"

    def test_temporary_refusal_is_retryable(self, sink):
        sink.script.append("451 4.3.0 Try again later")
        with pytest.raises(DeliveryError) as caught:
            smtpserver.provider(sink.port).send(_message())
        assert caught.value.retryable
        assert caught.value.response["code"] == 451
        assert sink.messages == []

    def test_permanent_refusal_is_not_retryable(self, sink):
        sink.script.append("550 5.1.1 No such user")
        with pytest.raises(DeliveryError) as caught:
            smtpserver.provider(sink.port).send(_message())
        assert not caught.value.retryable
        assert "550" in str(caught.value)

    def test_server_down_is_retryable(self):
        port = smtpserver._free_port()
        with pytest.raises(DeliveryError) as caught:
            smtpserver.provider(port, timeout=2).send(_message())
        assert caught.value.retryable


class TestStartTlsAndAuth:
    def test_authenticates_over_starttls(self, tmp_path):
        sink = smtpserver.start(tmp_path, login=("ops", "s3cret-pass"))
        try:
            config = parse("email", {"type": "smtp", "host": "localhost", "port": sink.port,
                                     "tls": "starttls", "username": "ops",
                                     "password_secret": "SMTP_PASS", "from": "ops@relay.test",
                                     "ca_file": sink.ca_file})
            SmtpEmailProvider(config, password="s3cret-pass",  # type: ignore[arg-type]
                              guard=smtpserver.LOCAL).send(_message())
            assert sink.auth_attempts == [("ops", "s3cret-pass")]
            assert len(sink.messages) == 1
        finally:
            sink.close()

    def test_wrong_password_is_a_permanent_failure(self, tmp_path):
        sink = smtpserver.start(tmp_path, login=("ops", "s3cret-pass"))
        try:
            config = parse("email", {"type": "smtp", "host": "localhost", "port": sink.port,
                                     "tls": "starttls", "username": "ops",
                                     "password_secret": "SMTP_PASS", "from": "ops@relay.test",
                                     "ca_file": sink.ca_file})
            with pytest.raises(DeliveryError) as caught:
                SmtpEmailProvider(config, password="wrong",  # type: ignore[arg-type]
                                  guard=smtpserver.LOCAL).send(_message())
            assert not caught.value.retryable
            assert "wrong" not in str(caught.value)
            assert sink.messages == []
        finally:
            sink.close()


class TestConnectionReuse:
    def test_messages_share_one_connection_and_each_names_only_its_recipient(self, sink):
        provider = smtpserver.provider(sink.port)
        for n in range(5):
            provider.send(_message(attempt_id=f"reuse-{n}", to=f"r{n}@example.com"))
        assert len(set(sink.peers)) == 1
        assert [rcpts for _, rcpts in sink.envelopes] == [[f"r{n}@example.com"]
                                                          for n in range(5)]
        assert len(set(sink.message_ids())) == 5

    def test_a_refused_message_drops_its_connection(self, sink):
        provider = smtpserver.provider(sink.port)
        provider.send(_message(attempt_id="before"))
        sink.script.append("550 5.1.1 No such user")
        with pytest.raises(DeliveryError):
            provider.send(_message(attempt_id="refused"))
        provider.send(_message(attempt_id="after"))
        assert sink.message_ids() == ["<before@relay.test>", "<after@relay.test>"]
        assert len(set(sink.peers)) == 2

    def test_another_login_or_server_never_shares_a_connection(self, sink):
        smtpserver.provider(sink.port).send(_message(attempt_id="one"))
        smtpserver.provider(sink.port, timeout=7).send(_message(attempt_id="two"))
        other = smtpserver.start()
        try:
            smtpserver.provider(other.port).send(_message(attempt_id="three"))
        finally:
            other.close()
        assert len(set(sink.peers)) == 2
        assert len(other.messages) == 1
