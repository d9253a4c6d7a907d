"""Fingerprints: one cause, one fingerprint, whatever the contact, payload, time or numbers;
two causes (another node, error class or provider code), two fingerprints."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relayflow.engine import fingerprint

WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12)
EMAILS = st.builds("{}.{}@{}.{}".format, WORDS, WORDS, WORDS, st.sampled_from(["com", "io", "fr"]))
TIMES = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31),
                     timezones=st.just(UTC))
NUMBERS = st.one_of(st.integers(-10**12, 10**12).map(str),
                    st.floats(0, 1e9, allow_nan=False).map(lambda f: f"{f:.2f}"))
URLS = st.builds("https://{}.example.com/v1/{}/{}?page={}".format, WORDS, WORDS,
                 st.integers(0, 10**9), st.integers(0, 99))
QUOTED = st.text(alphabet=st.characters(blacklist_characters="'\n", blacklist_categories=["Cs"]),
                 max_size=40).map(lambda t: f"'{t}'")
ORDERS = st.integers(0, 10**7).map(lambda n: f"ORD-{n:07d}")
HEX = st.binary(min_size=5, max_size=20).map(lambda b: b.hex() + "a1")

TEMPLATE = ("UndefinedError: {quoted} has no attribute 'card_last4' for {email} at {at} "
            "({at_space}), order {order}, amount {amount}, run {run}, see {url}, ref {hex}")


def _message(email: str, at: datetime, order: str, amount: str, run: uuid.UUID,
             url: str, quoted: str, hex_id: str) -> str:
    return TEMPLATE.format(email=email, at=at.isoformat(), at_space=f"{at:%Y-%m-%d %H:%M:%S}",
                           order=order, amount=amount, run=run, url=url, quoted=quoted,
                           hex=hex_id)


def _of(message: str, **parts: str) -> str:
    where = {"workflow": "welcome", "node_id": "send_receipt", "node_type": "SEND_MESSAGE",
             "error_class": "UndefinedError", **parts}
    return fingerprint.of_run(error=message, **where)


REFERENCE = _of(_message("ada@example.com", datetime(2026, 12, 1, 10, tzinfo=UTC),
                         "ORD-0000001", "42", uuid.UUID(int=1), "https://x.example.com/a",
                         "'dict object'", "deadbeef12"))


@settings(max_examples=1000, deadline=None)
@given(email=EMAILS, at=TIMES, order=ORDERS, amount=NUMBERS, run=st.uuids(), url=URLS,
       quoted=QUOTED, hex_id=HEX)
def test_one_cause_has_one_fingerprint_whatever_varies(
        email: str, at: datetime, order: str, amount: str, run: uuid.UUID, url: str,
        quoted: str, hex_id: str) -> None:
    message = _message(email, at, order, amount, run, url, quoted, hex_id)
    assert _of(message) == REFERENCE, fingerprint.pattern(message)


@settings(max_examples=300, deadline=None)
@given(part=st.sampled_from(["workflow", "node_id", "node_type", "error_class"]),
       a=st.text(min_size=1, max_size=30), b=st.text(min_size=1, max_size=30))
def test_another_place_or_class_is_another_fingerprint(part: str, a: str, b: str) -> None:
    if a != b:
        assert _of("boom", **{part: a}) != _of("boom", **{part: b})


@settings(max_examples=300, deadline=None)
@given(a=st.integers(100, 599), b=st.integers(100, 599), provider=st.sampled_from(
    ["smtp", "http", "log"]))
def test_another_provider_code_is_another_fingerprint(a: int, b: int, provider: str) -> None:
    def of(code: int) -> str:
        return fingerprint.of_attempt(workflow="welcome", node_id="send", channel="email",
                                      provider=provider, code=str(code),
                                      error=f"{code} mailbox unavailable for ada@example.com")
    assert (of(a) == of(b)) == (a == b)


def test_the_parts_cannot_run_into_each_other() -> None:
    assert _of("x", workflow="ab", node_id="c") != _of("x", workflow="a", node_id="bc")


def test_a_run_and_an_attempt_never_share_one() -> None:
    run = fingerprint.of_run(workflow="w", node_id="n", node_type="t", error_class="c",
                             error="e")
    attempt = fingerprint.of_attempt(workflow="w", node_id="n", channel="t", provider="c",
                                     code="", error="e")
    assert run != attempt
    assert len(run) == len(attempt) == fingerprint.LENGTH


@pytest.mark.parametrize(("text", "expected"), [
    ("UndefinedError: 'dict object' has no attribute 'card_last4' in {{ contact.card_last4 }}",
     "UndefinedError: <quoted> has no attribute <quoted> in {{ contact.card_last4 }}"),
    ("request failed after 3 attempt(s): HTTP 500 from https://api.example.com/v1/o/4417?x=1",
     "request failed after <number> attempt(s): HTTP <number> from <url>"),
    ("550 5.1.1 <ada.l@example.com>: rejected at 2026-12-01T10:00:00Z",
     "<number> <number> <<email>>: rejected at <time>"),
    ("order ORD-0004417 for cus_9fA8b7c6, run 01931f7e-8a4b-7c3d-9e2f-0123456789ab",
     "order <id> for <id>, run <uuid>"),
    ("hash deadbeef12 at 0x1F, 10:30:01,\n  step2 of address_line2",
     "hash <hex> at <hex>, <time>, step2 of address_line2"),
])
def test_what_varies_becomes_a_placeholder_and_the_rest_stays(text: str, expected: str) -> None:
    assert fingerprint.pattern(text) == expected


def test_a_long_message_keeps_its_first_characters() -> None:
    assert len(fingerprint.pattern("word " * 1000)) == fingerprint.MAX_PATTERN


@pytest.mark.parametrize("text", ["a\ud800b", "a\x00b", "\udfff"])
def test_any_text_an_error_can_hold_has_one(text: str) -> None:
    """A template can render a lone surrogate or a NUL into a STOP_ERROR's message: the
    failure is still named (and the row made storable afterwards), never an exception."""
    first = fingerprint.of_run(workflow="w", node_id="n", node_type="STOP_ERROR",
                               error_class="StopError", error=text)
    assert first == fingerprint.of_run(workflow="w", node_id="n", node_type="STOP_ERROR",
                                       error_class="StopError", error=text)
    assert len(first) == fingerprint.LENGTH
