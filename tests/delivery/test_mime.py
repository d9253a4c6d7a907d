"""The bytes of an email, as the SMTP server receives them: headers machines must read stay
readable (one-click unsubscribe), other text is encoded as RFC 2047 and MIME require, and
every part reads back to what was rendered."""

from __future__ import annotations

import re
from email import message_from_bytes, policy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relayflow.delivery import mime
from tests.support import smtpserver

UNSUBSCRIBE = ("<https://relay.example.com/unsubscribe/eyJhbGciOiJIUzI1NiJ9.eyJjIjoiMDFhMjRh"
               "ZDYtYzNhZS03ODJmLWFmOWEtNTVkOGZhMzdiZWFkIn0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg>")


def _head(raw: bytes) -> bytes:
    return raw.partition(b"\r\n\r\n")[0]


def _unfold(raw_header: str) -> str:
    return re.sub(r"\r\n(?=[ \t])", "", raw_header)


class TestOnTheWire:
    def test_a_long_unsubscribe_url_goes_out_as_it_is(self, sink):
        """Mail clients read List-Unsubscribe as bytes: an RFC 2047 encoded word
        (`=?utf-8?q?=3Chttps=3A//…`) hides the URL one-click unsubscribe needs."""
        smtpserver.provider(sink.port).send(smtpserver.message(headers={
            "List-Unsubscribe": UNSUBSCRIBE,
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}))
        head = _head(sink.raw[0])
        assert f"\r\nList-Unsubscribe: {UNSUBSCRIBE}\r\n".encode() in head
        assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in head
        assert b"=?" not in head

    def test_text_that_is_not_ascii_is_encoded_and_reads_back(self, sink):
        subject = "Café crème — votre commande n°12 est partie " * 2
        body = "Bonjour Zoë,\n\nça part aujourd'hui.\n" + "é" * 120
        smtpserver.provider(sink.port).send(smtpserver.message(
            to="Zoë Ünter <zoe@example.com>", subject=subject, body=body,
            html="<p>Bonjour Zoë</p>"))
        raw = sink.raw[0]
        assert raw.isascii()  # 7-bit clean: no server needs 8BITMIME or SMTPUTF8
        assert all(len(line) <= 78 for line in raw.split(b"\r\n"))
        parsed = message_from_bytes(raw, policy=policy.default)
        assert parsed["Subject"] == subject
        assert parsed["To"].addresses[0].display_name == "Zoë Ünter"
        assert parsed.get_body(("plain",)).get_content() == body.replace("\n", "\r\n") + "\r\n"
        assert parsed.get_body(("html",)).get_content() == "<p>Bonjour Zoë</p>\r\n"
        assert sink.envelopes == [("ops@relay.test", ["zoe@example.com"])]

    def test_ascii_text_goes_out_in_seven_bit(self, sink):
        smtpserver.provider(sink.port).send(smtpserver.message(body="line one\nline two"))
        raw = sink.raw[0]
        assert b"\r\nContent-Transfer-Encoding: 7bit\r\n" in raw
        assert raw.endswith(b"\r\n\r\nline one\r\nline two\r\n")


class TestHeaders:
    @given(st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz<>:/.@=-_0123456789",
                            min_size=0, max_size=120), min_size=1, max_size=20))
    def test_an_ascii_value_is_folded_only_at_its_spaces(self, words):
        value = " ".join(words)
        written = mime.header("X-Value", value)
        assert written.endswith("\r\n")
        assert _unfold(written[:-2]) == f"X-Value: {value}"  # nothing added or encoded
        for line in written[:-2].split("\r\n"):
            assert line.strip(" ")  # never a line of spaces only
            # Longer than 78 only where one word is (or the value ends in spaces).
            assert len(line.rstrip(" ")) <= 78 or " " not in line.strip(" ")

    def test_a_word_longer_than_smtp_allows_is_refused(self):
        with pytest.raises(mime.Unwritable, match="998"):
            mime.header("X-Value", "x" * 1000)

    def test_a_value_that_is_not_ascii_is_written_as_encoded_words(self):
        written = mime.header("Subject", "Café")
        assert written == "Subject: =?utf-8?q?Caf=C3=A9?=\r\n"


# RFC 5322 §3.6.4 msg-id and §3.3 date-time, as strict grammars (no obsolete forms).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
_MSG_ID = re.compile(rf"<{_DOT_ATOM}@{_DOT_ATOM}>")
_DATE = re.compile(r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|"
                   r"Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}")


class TestStrictlyValid:
    @pytest.mark.parametrize("sender", ["ops@relay.test", "Relay Ops <ops@relay.test>"])
    def test_message_id_date_and_from_read_under_a_strict_parser(self, sink, sender):
        long_url = f"<https://relay.example.com/u/{'a1b2c3d4' * 30}>"  # 240+ characters
        smtpserver.provider(sink.port, **{"from": sender}).send(smtpserver.message(headers={
            "List-Unsubscribe": long_url, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}))
        raw = sink.raw[0]
        head = _head(raw).decode("ascii")
        assert f"\r\nList-Unsubscribe: {long_url}\r\n" in head + "\r\n"
        parsed = message_from_bytes(raw, policy=policy.strict)
        assert parsed.defects == []
        fields = {name: _unfold(line.split(":", 1)[1]).strip()
                  for line in re.split(r"\r\n(?![ \t])", head)
                  for name in [line.split(":", 1)[0]]}
        assert _MSG_ID.fullmatch(fields["Message-ID"]), fields["Message-ID"]
        assert _DATE.fullmatch(fields["Date"]), fields["Date"]
        for name in ("From", "Date", "Message-ID"):
            assert parsed[name].defects == (), name
        assert parsed["Date"].datetime.tzinfo is not None
        [address] = parsed["From"].addresses
        assert address.addr_spec == "ops@relay.test"
