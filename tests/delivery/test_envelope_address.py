"""The plain-address shortcut of envelope.email_address says what the email library's
parser says, for every input: the same address or the same refusal."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relayflow.delivery.envelope import InvalidMessage, _parsed_address, email_address

# Characters that matter to addresses: atext, dots, the @, what the shortcut must leave to
# the parser (quotes, brackets, spaces, underscores in hosts, non-ASCII, line breaks).
ALPHABET = "aZ09.@-_+'{}!#$%&*/=?^`|~ \"<>[]()\\,;:é\n\t"
LABEL = st.text(alphabet="aZ09-_é", min_size=0, max_size=8)
ADDRESSES = st.one_of(
    st.text(alphabet=ALPHABET, max_size=40),
    st.builds(lambda local, labels: f"{local}@{'.'.join(labels)}",
              st.text(alphabet=ALPHABET.replace("@", ""), min_size=0, max_size=70),
              st.lists(LABEL, min_size=1, max_size=4)),
)


def _answer(function, value: str) -> str:
    try:
        return function(value)
    except InvalidMessage:
        return "refused"


@settings(max_examples=3000, deadline=None)
@given(ADDRESSES)
def test_the_shortcut_agrees_with_the_parser(value: str) -> None:
    shortcut = _answer(email_address.__wrapped__, value)
    parser = _answer(lambda v: _parsed_address(v, "to"), value)
    assert shortcut == parser, value


@pytest.mark.parametrize("value", [
    "ada@example.com", "o'neil+tag@mail.example.co.uk", "a@localhost",
    "a" * 64 + "@example.com",
])
def test_plain_addresses_are_returned_as_they_are(value: str) -> None:
    assert email_address(value) == value


@pytest.mark.parametrize("value", [
    "a..b@example.com", "a@example.com\n", "a" * 65 + "@example.com",
    "a@" + "b" * 250 + ".com", "a@b.com, c@d.com",
])
def test_what_is_not_one_plain_address_is_refused(value: str) -> None:
    with pytest.raises(InvalidMessage):
        email_address(value)
