"""Secrets taken out of whatever a run stores or shows (errors, outputs, requests)."""

from __future__ import annotations

import base64
import functools
import re
from typing import TypeVar, cast

# A secret reaches a stored value not only as written but in the forms a request or a
# provider's echo gives it: percent-encoded (fully, partly as httpx encodes a query, or
# with '+' for spaces), JSON-escaped (including \uXXXX and surrogate pairs), Python-repr
# escaped (an httpx/h11 error quoting a header as bytes), HTML-escaped, and base64 (standard
# or URL-safe, with or without padding, alone or inside a longer base64 run such as
# "Basic <user:secret>" or SMTP AUTH PLAIN). Each secret gets one compiled pattern, made
# once and cached: every character may appear raw or in any of its escapes, and each
# base64 form is matched at each of the three byte alignments it can have inside a longer
# encoding (the characters that depend only on the secret's bytes).

T = TypeVar("T")
MIN_BASE64_FORM = 8  # shorter base64 fragments would redact unrelated text
_SHORT_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f",
                       "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_HTML_NAMED = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}


def _char_pattern(char: str) -> str:
    """A regex for one character raw or escaped (URL, JSON, Python repr, HTML)."""
    if char.isascii() and char.isalnum():
        return re.escape(char)
    code = ord(char)
    utf8 = char.encode()
    alts = [re.escape(char), "(?i:" + "".join(f"%{b:02X}" for b in utf8) + ")",
            "(?i:" + "".join(f"\\\\x{b:02x}" for b in utf8) + ")",
            f"&#0*{code};", f"(?i:&#x0*{code:x};)"]
    if code <= 0xFFFF:
        alts.append(f"(?i:\\\\u{code:04x})")
    else:
        high, low = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
        alts += [f"(?i:\\\\u{high:04x}\\\\u{low:04x})", f"(?i:\\\\U{code:08x})"]
    if code < 0x100:
        alts.append(f"(?i:\\\\x{code:02x})")
    if char == " ":
        alts.append(re.escape("+"))
    if char in _SHORT_JSON_ESCAPES:
        alts.append(re.escape(_SHORT_JSON_ESCAPES[char]))
    if char == "'":
        alts.append(re.escape("\\'"))
    if char in _HTML_NAMED:
        alts.append(re.escape(_HTML_NAMED[char]))
    return "(?:" + "|".join(dict.fromkeys(alts)) + ")"


def _tolerant(text: str) -> str:
    return "".join(_char_pattern(c) for c in text)


def base64_forms(value: str) -> set[str]:
    """Every base64 spelling of a secret, whole or as it sits inside a longer encoding.

    Inside a longer run the secret starts at byte offset 0, 1 or 2 of a 3-byte group; for
    each, the characters that encode only the secret's bits are the same whatever
    surrounds it, so those are the form to look for."""
    data = value.encode()
    forms: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(data).decode()
        forms |= {whole, whole.rstrip("=")}
        for shift in range(3):
            text = encode(b"\0" * shift + data).decode()
            start, end = -(-8 * shift // 6), 8 * (shift + len(data)) // 6
            forms.add(text[start:end])
    return {form for form in forms if len(form) >= MIN_BASE64_FORM}


@functools.lru_cache(maxsize=1024)
def secret_pattern(value: str) -> re.Pattern[str]:
    """One pattern for every form of a secret, longest form first (alternation is ordered)."""
    forms = sorted({value} | base64_forms(value), key=len, reverse=True)
    return re.compile("|".join(_tolerant(form) for form in forms))


def redact(value: T, secrets: dict[str, str] | list[str]) -> T:
    """Replace every secret value, in every form it can take (see above), with a marker."""
    named = secrets.items() if isinstance(secrets, dict) else [("secret", v) for v in secrets]
    pairs = sorted(((v, n) for n, v in named if v), key=lambda p: -len(p[0]))
    if not pairs:
        return value
    # Markers are literal replacement text: a backslash would read as a group reference.
    patterns = [(secret_pattern(secret), f"[secret:{name}]".replace("\\", r"\\"))
                for secret, name in pairs]

    def scrub(item: object) -> object:
        if isinstance(item, str):
            for pattern, marker in patterns:
                item = pattern.sub(marker, item)
            return item
        if isinstance(item, dict):
            return {scrub(k): scrub(v) for k, v in item.items()}
        if isinstance(item, list):
            return [scrub(v) for v in item]
        return item

    return cast(T, scrub(value))
