"""Redaction of every form a secret takes in transit: percent-encoded (whole, partly, '+'
for spaces, either hex case), JSON-escaped, Python-repr escaped, HTML-escaped, and base64
(standard and URL-safe, padded or not, alone or at each byte alignment inside a longer
run); and redaction of what an HTTP effect brings back before a node sees it."""

from __future__ import annotations

import base64
import html
import json
import re
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import markupsafe
import pytest

from relayflow.engine.outcome import Advance, Fail, HttpResult
from relayflow.engine.stepper import base64_forms, redact, resume, secret_pattern
from tests.engine.builders import graph_of, make_ctx

SECRET = 'tok canary+A/é€😀="q\\" &k=v?x<y>\'%41 9f8e7d6c5b4a!'
MARKER = "[secret:T]"


def _b64_inside(encode: Any, shift: int) -> str:
    """The secret inside a longer base64 run, starting `shift` bytes into a 3-byte group."""
    return encode(b"u:\x00"[:shift] + b"user:" * 3 + SECRET.encode() + b";tail").decode()


FORMS = {
    "raw": SECRET,
    "quote": quote(SECRET, safe=""),
    "quote keeping /": quote(SECRET),
    "quote_plus": quote_plus(SECRET),
    "lower-case percent hex": re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(),
                                     quote(SECRET, safe="")),
    "httpx query encoding": str(httpx.URL(f"https://x.test/?k={SECRET}")).split("k=", 1)[1],
    "json ascii": json.dumps(SECRET)[1:-1],
    "json utf-8": json.dumps(SECRET, ensure_ascii=False)[1:-1],
    "json upper-case \\u": json.dumps(SECRET)[1:-1].replace("\\u20ac", "\\u20AC")
                                                  .replace("\\ud83d", "\\uD83D"),
    "json escaped slash": json.dumps(SECRET)[1:-1].replace("/", "\\/"),
    "python repr": repr(SECRET)[1:-1],
    "bytes repr": repr(SECRET.encode())[2:-1],
    "html.escape": html.escape(SECRET),
    "jinja escape": str(markupsafe.escape(SECRET)),
    "html numeric": "".join(f"&#{ord(c)};" if not c.isalnum() else c for c in SECRET),
    "base64": base64.b64encode(SECRET.encode()).decode(),
    "base64 unpadded": base64.b64encode(SECRET.encode()).decode().rstrip("="),
    "base64url": base64.urlsafe_b64encode(SECRET.encode()).decode(),
    "base64url unpadded": base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip("="),
    **{f"base64 inside, offset {n}": _b64_inside(base64.b64encode, n) for n in range(3)},
    **{f"base64url inside, offset {n}": _b64_inside(base64.urlsafe_b64encode, n)
       for n in range(3)},
    "base64 percent-encoded": quote(base64.b64encode(SECRET.encode()).decode(), safe=""),
}


@pytest.mark.parametrize("name", sorted(FORMS))
def test_each_form_is_redacted(name: str) -> None:
    form = FORMS[name]
    assert form != SECRET or name == "raw"

    redacted = redact(f"before {form} after", {"T": SECRET})

    assert MARKER in redacted
    assert form not in redacted
    if "inside" not in name:
        assert redacted == f"before {MARKER} after"


@pytest.mark.parametrize("shift", range(3))
@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
def test_base64_inside_a_longer_run_keeps_only_what_encodes_the_rest(shift: int,
                                                                    encode: Any) -> None:
    """What is left around the marker encodes the surrounding bytes (and at most one
    character shared with the secret's first or last byte), never the secret."""
    before = b"u:\x00"[:shift] + b"user:" * 3

    prefix, marker, suffix = redact(_b64_inside(encode, shift), {"T": SECRET}).partition(MARKER)

    assert marker == MARKER
    assert len(prefix) <= -(-len(before) * 4 // 3)
    assert len(suffix) <= len(encode(b";tail" + b"\x00\x00"))
    assert SECRET.encode()[1:4] not in base64.b64decode(encode(before)[: len(prefix) // 4 * 4]
                                                        .replace(b"-", b"+").replace(b"_", b"/"))


@pytest.mark.parametrize("form", ["a\\tb\\nc\\r-secret-1234",
                                  "a\\u0009b\\u000ac\\u000d-secret-1234",
                                  "a\\x09b\\x0ac\\x0d-secret-1234", "a%09b%0Ac%0D-secret-1234"])
def test_control_characters_in_their_escaped_forms(form: str) -> None:
    assert redact(f"<{form}>", {"T": "a\tb\nc\r-secret-1234"}) == f"<{MARKER}>"


def test_the_forms_really_differ() -> None:
    assert len(set(FORMS.values())) == len(FORMS)


def test_forms_inside_nested_values_and_keys() -> None:
    value = {"headers": {"x-echo": FORMS["base64 inside, offset 1"]},
             FORMS["quote_plus"]: [FORMS["json ascii"], {"deep": FORMS["bytes repr"]}]}

    redacted = redact(value, {"T": SECRET})

    assert SECRET not in json.dumps(redacted)
    assert MARKER in redacted["headers"]["x-echo"]
    assert redacted[MARKER] == [MARKER, {"deep": MARKER}]


def test_unrelated_text_and_base64_are_left_alone() -> None:
    other = "tok canary+B/é€😀 another value entirely 0000"
    text = f"{other} {base64.b64encode(other.encode()).decode()} {quote(other)}"

    assert redact(text, {"T": SECRET}) == text


def test_short_secrets_get_no_base64_forms() -> None:
    """Base64 of a few bytes is a few characters: matching it would redact unrelated text."""
    assert base64_forms("abc") == set()
    assert redact("YWJj abc", {"T": "abc"}) == "YWJj [secret:T]"
    assert all(len(f) >= 8 for f in base64_forms("abcdefgh"))


def test_the_pattern_is_built_once_per_secret() -> None:
    assert secret_pattern(SECRET) is secret_pattern(SECRET)


def test_longest_secret_still_wins_across_forms() -> None:
    secrets = {"SHORT": "canary+x", "LONG": "canary+x/long"}

    assert redact(quote_plus("canary+x/long"), secrets) == "[secret:LONG]"


def test_a_large_body_is_redacted() -> None:
    body = ("lorem ipsum " * 6000) + FORMS["json ascii"] + ("dolor " * 1000)

    redacted = redact(body, {f"S{i}": f"{SECRET}-{i:03d}" for i in range(20)} | {"T": SECRET})

    assert MARKER in redacted
    assert len(redacted) < len(body)


# --- what an HTTP effect brings back ------------------------------------------------------------


def _graph(**over: Any) -> Any:
    return graph_of({"lookup": {
        "type": "INTEGRATION", "next": "welcome",
        "request": {"method": "GET", "url": "https://crm.example.com/",
                    "headers": {"Authorization": "Bearer {{ secrets.T }}"}},
        "capture": {"echo": "body.echo", "header": "headers.x-echo"}, **over}})


def test_captured_echoes_are_redacted_before_the_output_bag() -> None:
    result = HttpResult(status=200, headers={"x-echo": FORMS["base64"]},
                        body={"echo": f"Bearer {FORMS['json ascii']}"})

    outcome = resume(_graph(), "lookup", make_ctx(secrets={"T": SECRET}), result)

    assert isinstance(outcome, Advance)
    assert outcome.output["echo"] == f"Bearer {MARKER}"
    assert outcome.output["header"] == MARKER


def test_a_transport_error_quoting_the_header_is_redacted() -> None:
    error = f"LocalProtocolError: Illegal header value {('Bearer ' + SECRET).encode()!r}"

    outcome = resume(_graph(), "lookup", make_ctx(secrets={"T": SECRET}),
                     HttpResult(status=None, error=error))

    assert isinstance(outcome, Fail)
    assert MARKER in outcome.reason
    assert "9f8e7d6c5b4a" not in outcome.reason
    assert "9f8e7d6c5b4a" not in json.dumps(outcome.output)


def test_the_on_error_branch_gets_the_redacted_error() -> None:
    outcome = resume(_graph(on_error="fallback"), "lookup", make_ctx(secrets={"T": SECRET}),
                     HttpResult(status=None, error=f"failed for {FORMS['quote']}"))

    assert isinstance(outcome, Advance)
    assert outcome.output["error"] == f"failed for {MARKER}"
