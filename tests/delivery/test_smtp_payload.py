"""What a rendered message may carry, checked against a real SMTP server on 127.0.0.1.

The raw bytes the server receives are the proof: no header a subject or recipient tried to
add, and exactly one RCPT TO per message."""

from __future__ import annotations

import pytest

from relayflow.delivery import envelope
from relayflow.delivery.base import DeliveryError
from relayflow.delivery.config import ConfigError, parse
from tests.support import smtpserver

INJECTED_SUBJECTS = [
    "Hi\r\nBcc: outsider@evil.test",
    "Hi\nBcc: outsider@evil.test",
    "Hi\rBcc: outsider@evil.test",
    "Hi\r\n\r\nbody of the attacker",
    "Hi\x00there",
    "Hi\x85Bcc: outsider@evil.test",  # NEL, a line break to str.splitlines()
    "Hi\u2028Bcc: outsider@evil.test",
]


def _header_lines(raw: bytes) -> list[bytes]:
    head, _, _ = raw.partition(b"\r\n\r\n")
    return head.split(b"\r\n")


class TestRefusedBeforeSending:
    @pytest.mark.parametrize("subject", INJECTED_SUBJECTS)
    def test_a_control_character_in_the_subject(self, sink, subject):
        with pytest.raises(DeliveryError) as caught:
            smtpserver.provider(sink.port).send(smtpserver.message(subject=subject))
        assert not caught.value.retryable
        assert "Subject header contains the control character" in str(caught.value)
        assert sink.raw == []

    def test_a_list_of_recipients(self, sink):
        with pytest.raises(DeliveryError) as caught:
            smtpserver.provider(sink.port).send(
                smtpserver.message(to="ada@example.com, eve@evil.test"))
        assert not caught.value.retryable
        assert "to must be exactly one email address" in str(caught.value)
        assert sink.envelopes == []

    @pytest.mark.parametrize("to", [
        "ada@example.com\r\nBcc: eve@evil.test", "ada@example.com; eve@evil.test",
        "ada@example.com eve@evil.test", "team: ada@example.com;", "ada", "ada@",
        "@example.com", "not an address", "ada@@example.com",
        "=?utf-8?q?Ada=0D=0ABcc:_eve@evil.test?= <ada@example.com>",
    ])
    def test_a_recipient_that_is_not_one_address(self, sink, to):
        with pytest.raises(DeliveryError) as caught:
            smtpserver.provider(sink.port).send(smtpserver.message(to=to))
        assert not caught.value.retryable
        assert "to" in str(caught.value)
        assert sink.envelopes == []

    def test_a_control_character_in_any_header(self, sink):
        with pytest.raises(DeliveryError, match="List-Unsubscribe header"):
            smtpserver.provider(sink.port).send(smtpserver.message(headers={
                "List-Unsubscribe": "<https://relay.test/u>\r\nBcc: eve@evil.test"}))
        with pytest.raises(DeliveryError, match="Reply-To"):
            smtpserver.provider(sink.port).send(smtpserver.message(headers={
                "Reply-To": "a@relay.test, eve@evil.test"}))
        assert sink.raw == []

    def test_a_from_address_that_is_not_one_address(self):
        with pytest.raises(ConfigError, match="from"):
            parse("email", {"type": "smtp", "host": "127.0.0.1", "from":
                            "ops@relay.test\r\nBcc: eve@evil.test"})


class TestWhatArrives:
    def test_exactly_one_rcpt_to_and_only_our_headers(self, sink):
        smtpserver.provider(sink.port).send(smtpserver.message(to="Ada Lovelace <ada@example.com>",
                                           subject="Hi Ada: Bcc: eve@evil.test",
                                           headers={"Reply-To": "help@relay.test"}))
        [(mail_from, rcpt_tos)] = sink.envelopes
        assert (mail_from, rcpt_tos) == ("ops@relay.test", ["ada@example.com"])
        names = [line.split(b":", 1)[0].lower() for line in _header_lines(sink.raw[0])
                 if line and not line[:1].isspace()]
        assert b"bcc" not in names
        assert sorted(names) == sorted([b"from", b"to", b"subject", b"date", b"message-id",
                                        b"reply-to", b"content-type",
                                        b"content-transfer-encoding", b"mime-version"])

    def test_the_envelope_ignores_recipient_headers(self, sink):
        # A Cc or Bcc among the extra headers never widens the envelope.
        smtpserver.provider(sink.port).send(smtpserver.message(headers={"Cc": "eve@evil.test"}))
        assert sink.envelopes == [("ops@relay.test", ["ada@example.com"])]


class TestPhoneNumbers:
    @pytest.mark.parametrize("to", ["+14155550123", "+1 (415) 555-0123", "+44 20 7946 0958"])
    def test_one_number_is_accepted(self, to):
        envelope.check(channel="sms", to=to, subject="")

    @pytest.mark.parametrize("to", ["+14155550123,+14155550124", "+1415555012;3",
                                    "+14155550123\n+14155550124", "call me", "12",
                                    "+1 415 555 0123 +1 415 555 0124", "++14155550123"])
    def test_anything_else_is_refused(self, to):
        with pytest.raises(envelope.InvalidMessage, match="one phone number"):
            envelope.check(channel="sms", to=to, subject="")


class TestEncodedWords:
    @pytest.mark.parametrize("subject", ["=?utf-8?q?Hi=0D=0ABcc:_eve@evil.test?=",
                                         "=?utf-8?b?SGkNCkJjYzogZXZlQGV2aWwudGVzdA==?="])
    def test_an_encoded_line_break_is_refused_too(self, sink, subject):
        # The email library decodes encoded words and would write the CR LF out raw.
        with pytest.raises(DeliveryError, match="Subject header contains"):
            smtpserver.provider(sink.port).send(smtpserver.message(subject=subject))
        assert sink.raw == []

    def test_an_encoded_word_without_one_is_sent(self, sink):
        smtpserver.provider(sink.port).send(smtpserver.message(subject="=?utf-8?q?Caf=C3=A9?="))
        assert sink.messages[0]["Subject"] == "Café"
