"""An email's bytes, written directly (RFC 5322 headers, a MIME text or alternative body).

Why not the standard library's EmailMessage: it costs about a millisecond per message
(its header registry parses every value it is given, then folds it again), and its folding
breaks headers that must be read by machines: a value longer than a line with nowhere to
break, such as `List-Unsubscribe: <https://…/unsubscribe/…>`, is rewritten as RFC 2047
encoded words (`=?utf-8?q?=3Chttps=3A//…?=`), where mail clients no longer find the URL
that one-click unsubscribe needs.

Here an ASCII value is written as given, folded only at its spaces (a line longer than 78
characters stays whole when it has none: RFC 5322 allows up to 998). A value with other
characters (a subject, a display name) goes through the standard library, which encodes it
in RFC 2047 words as it must. Every value has been checked first (envelope.py): one line,
no control character, and an address header holds exactly one address. Lines end in CR LF.
"""

from __future__ import annotations

import binascii
import re
import secrets
from collections.abc import Iterable
from email import policy

_POLICY = policy.SMTP  # RFC 2047 for what is not ASCII, CR LF line ends
_LINE = 78  # RFC 5322: lines SHOULD be at most 78 characters …
_MAX_LINE = 998  # … and MUST be at most 998
_BREAK = re.compile(r"\r\n|\r|\n")


class Unwritable(ValueError):
    """A header that cannot be written within the 998-character line limit."""


def header(name: str, value: str) -> str:
    """One header field, its lines ending in CR LF."""
    if not value.isascii():
        return str(_POLICY.header_factory(name, value).fold(policy=_POLICY))
    line = f"{name}: {value}"
    if len(line) <= _LINE:
        return line + "\r\n"
    lines: list[str] = []
    current, gap, first = f"{name}:", 1, True
    for word in value.split(" "):
        if not word:  # one more space between two words
            gap += 1
            continue
        piece = " " * gap + word
        if not first and len(current) + len(piece) > _LINE:
            lines.append(current)  # fold: the spaces before `word` begin the next line
            current = piece
        else:
            current += piece
        gap, first = 1, False
    lines.append(current + " " * (gap - 1))
    if any(len(part) > _MAX_LINE for part in lines):
        raise Unwritable(f"the {name} header has a part longer than {_MAX_LINE} characters")
    return "\r\n".join(lines) + "\r\n"


def _text(content: str, subtype: str) -> str:
    """A text part: its own Content-Type and Content-Transfer-Encoding, a blank line, the
    body (7bit when it is ASCII in short lines, else quoted-printable)."""
    lines = _BREAK.split(content)
    if content.isascii() and all(len(line) <= _MAX_LINE for line in lines):
        encoding, body = "7bit", "\r\n".join(lines)
    else:
        raw = "\r\n".join(lines).encode("utf-8")
        encoding = "quoted-printable"
        body = binascii.b2a_qp(raw, istext=True).decode("ascii")
    if not body.endswith("\r\n"):
        body += "\r\n"
    return (f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
            f"Content-Transfer-Encoding: {encoding}\r\n\r\n{body}")


def build(fields: Iterable[tuple[str, str]], *, text: str, html: str | None = None) -> bytes:
    """The message: `fields` in order, then the MIME headers and the body (the text alone,
    or text and HTML as multipart/alternative)."""
    head = "".join(header(name, value) for name, value in fields) + "MIME-Version: 1.0\r\n"
    if html is None:
        return (head + _text(text, "plain")).encode()
    cut = f"=_relayflow_{secrets.token_hex(12)}"
    return (f'{head}Content-Type: multipart/alternative;\r\n boundary="{cut}"\r\n\r\n'
            f"--{cut}\r\n{_text(text, 'plain')}\r\n--{cut}\r\n{_text(html, 'html')}"
            f"\r\n--{cut}--\r\n").encode()
